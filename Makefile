# iadvize-token-broker — every target installs what it needs into project-local folders
# (.venv for moto and cargo-lambda) and starts/stops its own servers on loopback.
# CI runs `make test` (.ci/run); the targets developers run are the ones CI runs.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
ARCH ?= x86_64
ARCH_FLAG = $(if $(filter arm64,$(ARCH)),--arm64,$(if $(filter x86_64,$(ARCH)),--x86-64,$(error ARCH must be x86_64 or arm64)))
WITH_MOTO := scripts/with-moto.sh
# nextest when present (parallel, one process per test), cargo test otherwise.
NEXTEST := $(shell cargo nextest --version >/dev/null 2>&1 && echo yes)

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help tools test lint fmt test-rust demo build package bench bench-fleet clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(VENV)/.stamp: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

tools: $(VENV)/.stamp ## install moto and cargo-lambda into .venv

test: tools lint test-rust lint-infra test-infra-apply ## every test: fmt, clippy, unit + integration tests on stand-ins, IaC checks

lint: ## cargo fmt --check and clippy -D warnings
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## format the code
	cargo fmt --all

test-rust: tools reader-deps ## Rust unit, integration and doc tests against moto and the iAdvize stand-in
	cargo build --workspace --bins
ifeq ($(NEXTEST),yes)
	$(WITH_MOTO) cargo nextest run --workspace --no-fail-fast
else
	$(WITH_MOTO) cargo test --workspace --no-fail-fast
endif
	cargo test --workspace --doc

demo: tools ## the broker's main job end to end on local stand-ins
	cargo build --workspace --bins
	$(WITH_MOTO) cargo run --quiet --example demo

bench: tools ## cost of a tick and of a rotation: Secrets Manager calls, iAdvize calls, wall time
	$(WITH_MOTO) cargo run --release --quiet --example bench

bench-fleet: tools ## one broker for 10/100/500 integrations: first fill, fresh-tick cost, a simulated day (minutes)
	$(WITH_MOTO) cargo run --release --quiet --example bench_fleet

build: tools ## release build for Lambda with cargo-lambda (ARCH=x86_64|arm64)
	cargo lambda build --release $(ARCH_FLAG) --bin iadvize-token-broker

package: tools ## the zip Terraform uploads: target/lambda/iadvize-token-broker/bootstrap.zip
	cargo lambda build --release $(ARCH_FLAG) --bin iadvize-token-broker --output-format zip
	@ls -l target/lambda/iadvize-token-broker/bootstrap.zip

clean: ## remove build outputs and local environments
	cargo clean
	rm -rf $(VENV) .venv-infra .tmp

include infra/infra.mk
include examples/examples.mk
