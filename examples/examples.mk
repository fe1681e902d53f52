# The other-language token readers (examples/node, examples/python, examples/shell) and their
# packages, installed into project-local places: examples/node/node_modules (npm ci from the
# committed package-lock.json), boto3 and aws-secretsmanager-caching in .venv
# (requirements-dev.txt). The shell reader needs the AWS CLI (in .venv, from
# requirements-dev.txt), jq and curl. The Go reader (examples/go, tests/it/go_reader.rs) needs Go
# and the AWS SDK for Go v2 as Debian packages them (GOPATH build, no module proxy): apt-get
# installs them as root, about 100 MB and 2 minutes; the first build of the reader takes about
# a minute more (its cache stays in target/go-reader).
# Included from the Makefile; `test-rust` depends on reader-deps.

NODE_READER := examples/node
RECIPE_CHECK := examples/eks/validate

.PHONY: reader-deps test-readers check-recipes

$(NODE_READER)/node_modules/.package-lock.json: $(NODE_READER)/package.json $(NODE_READER)/package-lock.json
	@scripts/prereqs.sh reader-deps node npm
	@echo "reader-deps: npm ci in $(NODE_READER) (first run: about a minute)"
	cd $(NODE_READER) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

reader-deps: $(VENV)/.stamp $(NODE_READER)/node_modules/.package-lock.json ## install what the Node, Python, shell and Go token readers need
	@scripts/prereqs.sh reader-deps node npm jq curl go go-aws-sdk

test-readers: reader-deps ## run the Node, Python, shell and Go token readers against moto and the iAdvize stand-in
	$(WITH_MOTO) cargo test --test it -- readers:: go_reader::

# The platform recipes (docs/consumers.md), validated offline: the EKS manifests against the
# External Secrets Operator and Kubernetes schemas (npm packages, examples/eks/validate), the
# ECS task definitions against botocore's ECS model, the GitHub workflow against the schema
# check-jsonschema ships (each also proves that broken copies are refused); the ECS and CI
# recipes' AWS CLI commands run against moto. About a minute after the first npm ci (about 30 s).
$(RECIPE_CHECK)/node_modules/.package-lock.json: $(RECIPE_CHECK)/package.json $(RECIPE_CHECK)/package-lock.json
	@scripts/prereqs.sh check-recipes node npm
	cd $(RECIPE_CHECK) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

check-recipes: $(VENV)/.stamp $(RECIPE_CHECK)/node_modules/.package-lock.json ## validate the EKS, ECS and CI recipes offline against their schemas
	cd $(RECIPE_CHECK) && node check.mjs
	$(VENV)/bin/python examples/ecs/check_task_definitions.py
	$(VENV)/bin/python examples/ci/check_workflow.py
	$(WITH_MOTO) examples/ecs/cli_commands_test.sh
	$(WITH_MOTO) examples/ci/cli_commands_test.sh
