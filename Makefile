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

# Project-local cargo tools (cargo-deny, cargo-cyclonedx), pinned for reproducible checks.
TOOLS := .tools
CARGO_DENY_VERSION := 0.20.2
CARGO_CYCLONEDX_VERSION := 0.5.9
DIST_ARCHES ?= x86_64 arm64
PREREQS := scripts/prereqs.sh

export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Incremental compilation data is gigabytes for this workspace's test binaries and a one-off
# build (CI's, a fresh clone's) never reuses it. Set CARGO_INCREMENTAL=1 to keep it.
export CARGO_INCREMENTAL ?= 0

.PHONY: help tools test lint deny fmt test-rust demo build package dist bench bench-fleet clean

help: ## list the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort | expand -t 24

$(VENV)/.stamp: requirements-dev.txt
	@echo "tools: installing moto, cargo-lambda, awscli into $(VENV) (first run: about 2 minutes)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

tools: $(VENV)/.stamp ## install moto and cargo-lambda into .venv

test: prereqs-test tools lint test-rust check-recipes lint-infra test-infra-apply ## every test: fmt, clippy, cargo-deny, unit + integration tests on stand-ins, IaC checks

# One clear line naming what to install, before anything else runs.
.PHONY: prereqs-test prereqs-demo prereqs-dist
prereqs-test:
	@$(PREREQS) test cargo python3 terraform node npm jq curl
prereqs-demo:
	@$(PREREQS) demo cargo python3
prereqs-dist:
	@$(PREREQS) dist cargo python3

lint: deny ## cargo fmt --check, clippy -D warnings, cargo deny (licenses, bans, sources; advisories when online)
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

$(TOOLS)/bin/cargo-deny:
	@echo "tools: building cargo-deny $(CARGO_DENY_VERSION) into $(TOOLS) (first run only: 5 to 15 minutes on 2 cores)"
	cargo install --locked --quiet --root $(TOOLS) --version $(CARGO_DENY_VERSION) cargo-deny

$(TOOLS)/bin/cargo-cyclonedx:
	@echo "tools: building cargo-cyclonedx $(CARGO_CYCLONEDX_VERSION) into $(TOOLS) (first run only: 5 to 15 minutes on 2 cores)"
	cargo install --locked --quiet --root $(TOOLS) --version $(CARGO_CYCLONEDX_VERSION) cargo-cyclonedx

# Advisories need the RustSec database from the network: checked when reachable (10 s probe).
# The offline check runs `cargo metadata --offline`, which needs every crate of Cargo.lock,
# the ones only other platforms build included (wasm-bindgen, anstyle-wincon), and a build
# never downloads those: `cargo fetch` (no --target: every platform) gets them first. On a
# warm cache it downloads nothing.
deny: $(TOOLS)/bin/cargo-deny ## cargo deny: licenses, duplicate crates, sources (deny.toml); advisories when online
	cargo fetch --locked --quiet
	$(TOOLS)/bin/cargo-deny --offline check licenses bans sources
	@if timeout 10 git ls-remote --quiet https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then \
	  $(TOOLS)/bin/cargo-deny check advisories; \
	else \
	  echo "deny: advisory database unreachable (offline?): advisories not checked"; \
	fi

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

demo: prereqs-demo tools ## the broker's main job end to end on local stand-ins (NO_COLOR respected)
	cargo build --workspace --bins
	$(WITH_MOTO) cargo run --quiet --example demo

bench: tools ## cost of a tick and of a rotation, and the Lambda binary's init and refresh times (BENCH_BINARY=path/to/bootstrap to time another build)
	$(if $(BENCH_BINARY),,cargo build --release --quiet --bin iadvize-token-broker)
	$(WITH_MOTO) cargo run --release --quiet --example bench

bench-fleet: tools ## one broker for 10/100/500 integrations: first fill, fresh-tick cost, a simulated day, a refill (minutes; BENCH_FLEET_ONLY=500 runs one size)
	$(WITH_MOTO) cargo run --release --quiet --example bench_fleet

build: tools ## release build for Lambda with cargo-lambda (ARCH=x86_64|arm64)
	cargo lambda build --release $(ARCH_FLAG) --bin iadvize-token-broker

package: tools ## the zip Terraform uploads: target/lambda/iadvize-token-broker/bootstrap.zip
	cargo lambda build --release $(ARCH_FLAG) --bin iadvize-token-broker --output-format zip
	@scripts/check-zip-size.sh target/lambda/iadvize-token-broker/bootstrap.zip

dist: prereqs-dist tools $(TOOLS)/bin/cargo-cyclonedx ## release artifacts in dist/: Lambda zip and CLI tar.gz per arch, completions, man page, CycloneDX SBOMs, SHA256SUMS (see RELEASING.md)
	@echo "dist: two release builds per architecture ($(DIST_ARCHES)): the Lambda, then the CLI; a first one takes 5 to 10 minutes here"
	nice -n 10 scripts/dist.sh $(DIST_ARCHES)

clean: clean-infra ## remove everything the targets create: target, dist, .tools, venvs, node_modules, Terraform folders, .tmp
	cargo clean
	rm -rf $(VENV) .venv-infra .tmp $(TOOLS) dist examples/node/node_modules examples/eks/validate/node_modules node_modules

include infra/infra.mk
include examples/examples.mk
