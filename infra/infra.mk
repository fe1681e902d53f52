# Infrastructure checks, included by the top-level Makefile (`include infra/infra.mk`).
#
#   make lint-infra        cfn-lint + sam validate --lint on both SAM templates, the SAM checks
#                          of infra/tests/sam_checks.py, terraform fmt/init/validate on the
#                          module and every example, checkov on infra/sam and infra/terraform
#                          (all offline)
#   make test-infra-apply  apply the Terraform examples (basic, complete) against moto, run one
#                          real refresh tick of the broker against what each created, destroy
#   make sam-prebuilt-template  regenerate infra/sam/template-prebuilt.yaml from template.yaml
#
# Tools come from PyPI into a project-local .venv-infra (two venvs: aws-sam-cli and checkov
# pin conflicting boto3 versions), re-installed only when infra/requirements-*.txt change.

INFRA_VENV       ?= .venv-infra
INFRA_PYTHON     ?= python3
INFRA_REGION     ?= us-east-1
# Local provider mirror of this workplace; without it terraform uses the public registry.
TF_PLUGIN_MIRROR ?= /opt/tf-plugins
INFRA_TF_RC      := $(CURDIR)/.tmp/terraformrc
INFRA_TF_DIRS    := infra/terraform $(sort $(dir $(wildcard infra/terraform/examples/*/main.tf)))
INFRA_SAM_TEMPLATES := infra/sam/template.yaml infra/sam/template-prebuilt.yaml
# The lead's venv (moto, boto3) and the binaries the apply test runs.
INFRA_APP_VENV   ?= $(if $(VENV),$(VENV),.venv)

INFRA_SAM      := $(INFRA_VENV)/sam/bin/sam
INFRA_CFN_LINT := $(INFRA_VENV)/sam/bin/cfn-lint
INFRA_CHECKOV  := $(INFRA_VENV)/checkov/bin/checkov

# No credentials, no telemetry, no calls home: every check here runs offline.
INFRA_TARGETS := lint-sam lint-terraform checkov-infra test-infra-apply
$(INFRA_TARGETS): export AWS_DEFAULT_REGION = $(INFRA_REGION)
$(INFRA_TARGETS): export AWS_REGION = $(INFRA_REGION)
$(INFRA_TARGETS): export SAM_CLI_TELEMETRY = 0
$(INFRA_TARGETS): export TF_CLI_CONFIG_FILE = $(INFRA_TF_RC)
$(INFRA_TARGETS): export TF_IN_AUTOMATION = 1
$(INFRA_TARGETS): export TF_INPUT = 0

.PHONY: lint-infra lint-sam lint-terraform checkov-infra test-infra-apply infra-tools clean-infra sam-prebuilt-template

lint-infra: lint-sam lint-terraform checkov-infra ## IaC checks: cfn-lint, sam validate, SAM checks, terraform fmt/validate, checkov (offline)
	@echo "lint-infra: all infrastructure checks passed"

infra-tools: $(INFRA_VENV)/sam/.stamp $(INFRA_VENV)/checkov/.stamp ## install SAM CLI, cfn-lint and checkov into .venv-infra

$(INFRA_VENV)/sam/.stamp: infra/requirements-sam.txt
	@echo "infra-tools: installing SAM CLI + cfn-lint into $(INFRA_VENV)/sam (first run: a few minutes)"
	rm -rf $(INFRA_VENV)/sam
	$(INFRA_PYTHON) -m venv $(INFRA_VENV)/sam
	$(INFRA_VENV)/sam/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-sam.txt
	touch $@

$(INFRA_VENV)/checkov/.stamp: infra/requirements-checkov.txt
	@echo "infra-tools: installing checkov into $(INFRA_VENV)/checkov (first run: a few minutes)"
	rm -rf $(INFRA_VENV)/checkov
	$(INFRA_PYTHON) -m venv $(INFRA_VENV)/checkov
	$(INFRA_VENV)/checkov/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	touch $@

# Terraform CLI config: the local filesystem mirror for the AWS provider when this machine
# has one, the normal registry otherwise. Rewritten every run (cheap, never stale).
.PHONY: $(INFRA_TF_RC)
$(INFRA_TF_RC):
	@mkdir -p $(dir $@)
	@if [ -d "$(TF_PLUGIN_MIRROR)/registry.terraform.io/hashicorp/aws" ]; then \
	  printf '%s\n' \
	    'provider_installation {' \
	    '  filesystem_mirror {' \
	    '    path    = "$(TF_PLUGIN_MIRROR)"' \
	    '    include = ["registry.terraform.io/hashicorp/aws"]' \
	    '  }' \
	    '  direct {' \
	    '    exclude = ["registry.terraform.io/hashicorp/aws"]' \
	    '  }' \
	    '}' > $@; \
	else \
	  printf '# no local provider mirror: use the public registry\n' > $@; \
	fi

lint-sam: $(INFRA_VENV)/sam/.stamp ## cfn-lint, sam validate --lint and the SAM checks on both SAM templates
	$(INFRA_CFN_LINT) $(INFRA_SAM_TEMPLATES)
	@set -e; for t in $(INFRA_SAM_TEMPLATES); do \
	  $(INFRA_SAM) validate --lint -t $$t --region $(INFRA_REGION); \
	done
	$(INFRA_VENV)/sam/bin/python infra/tests/sam_checks.py

sam-prebuilt-template: ## regenerate infra/sam/template-prebuilt.yaml from infra/sam/template.yaml
	$(INFRA_PYTHON) infra/sam/derive_prebuilt.py infra/sam/template.yaml > infra/sam/template-prebuilt.yaml

lint-terraform: $(INFRA_TF_RC) ## terraform fmt -check, init and validate on the module and every example
	terraform fmt -check -recursive infra/terraform
	@mkdir -p $(CURDIR)/.tmp
	@set -e; for d in $(INFRA_TF_DIRS); do \
	  echo "terraform init + validate: $$d"; \
	  terraform -chdir=$$d init -backend=false -input=false -no-color > $(CURDIR)/.tmp/tf-init.log 2>&1 \
	    || { cat $(CURDIR)/.tmp/tf-init.log; exit 1; }; \
	  terraform -chdir=$$d validate -no-color; \
	done

checkov-infra: $(INFRA_VENV)/checkov/.stamp ## checkov on the SAM templates and the Terraform module + examples
	$(INFRA_CHECKOV) --quiet --compact --skip-download -d infra/sam --framework cloudformation
	$(INFRA_CHECKOV) --quiet --compact --skip-download -d infra/terraform --framework terraform

test-infra-apply: $(INFRA_TF_RC) $(INFRA_APP_VENV)/.stamp ## apply the Terraform examples on moto, run a real tick, plan again, destroy
	cargo build --workspace --bins
	MOTO_SERVER=$(INFRA_APP_VENV)/bin/moto_server PYTHON=$(INFRA_APP_VENV)/bin/python \
	  bash infra/tests/apply_against_moto.sh

clean-infra: ## remove .venv-infra and the Terraform working folders
	rm -rf $(INFRA_VENV) $(INFRA_TF_RC)
	find infra/terraform -name .terraform -type d -prune -exec rm -rf {} +
	find infra/terraform -name .terraform.lock.hcl -delete
