# fate.flow developer entry points. Run from the repository root. `make help` lists them.
#
#   make pipeline   the main job: bootstrap, start the sandbox federation, run playbooks/pipeline.yml on it
#   make test       bootstrap, then every test stage (scripts/test.sh)
#
# Sandbox options (make sandbox / pipeline):
#   SOURCE_VERSION=1.6 DESTINATION_VERSION=1.11 ZOOKEEPER=1 REGISTRY=1 BASE_PORT=19380 ROOT=/abs/dir

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.NOTPARALLEL:
.PHONY: help bootstrap stage test sanity units integration lint \
        sandbox sandbox-stop sandbox-status pipeline demo clean distclean

VENV_PY := .venv/bin/python
yes = $(filter 1 y yes true on,$(1))

# Arguments for `python -m fate_sandbox start|stop|status`; every value is quoted.
SANDBOX_ROOT_ARG = $(if $(ROOT),--root "$(ROOT)")
SANDBOX_START_ARGS = $(SANDBOX_ROOT_ARG) \
  $(if $(SOURCE_VERSION),--source-version "$(SOURCE_VERSION)") \
  $(if $(DESTINATION_VERSION),--destination-version "$(DESTINATION_VERSION)") \
  $(if $(call yes,$(ZOOKEEPER)),--zookeeper) \
  $(if $(call yes,$(REGISTRY)),--registry) \
  $(if $(BASE_PORT),--base-port "$(BASE_PORT)")
# The sandbox package lives outside the collection; Ansible finds fate.flow in the staged copy.
SANDBOX_ENV = PYTHONPATH="$(CURDIR)/sandbox" \
  PATH="$(CURDIR)/.venv/bin:$$PATH" \
  ANSIBLE_COLLECTIONS_PATH="$(CURDIR)/build:$$HOME/.ansible/collections:/usr/share/ansible/collections"

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' "$(firstword $(MAKEFILE_LIST))" | sed -E 's/^([a-z-]+):.*## /  make \1\t/' | expand -t 24

bootstrap: ## Debian packages, .venv (requirements/dev.txt), ansible-test pip stand-in
	bash "./scripts/bootstrap.sh"

stage: bootstrap ## copy the collection as shipped to build/ansible_collections/fate/flow
	"$(VENV_PY)" "./scripts/lib/stage_collection.py" --source "$(CURDIR)" --dest "$(CURDIR)/build/ansible_collections/fate/flow"

test: bootstrap ## every test stage: sanity, units, integration, lint
	bash "./scripts/test.sh"

sanity: bootstrap ## ansible-test sanity (Python 3.11, local)
	bash "./scripts/test.sh" sanity

units: bootstrap ## ansible-test units
	bash "./scripts/test.sh" units

integration: bootstrap ## pytest tests/sandbox + ansible-test integration
	bash "./scripts/test.sh" integration

lint: bootstrap ## ansible-lint --offline --profile production, shellcheck
	bash "./scripts/test.sh" lint

sandbox: bootstrap stage ## start the sandbox federation (options: see the top of this Makefile)
	$(SANDBOX_ENV) "$(VENV_PY)" -m fate_sandbox start $(SANDBOX_START_ARGS)

sandbox-stop: ## stop what the sandbox started
	$(SANDBOX_ENV) "$(VENV_PY)" -m fate_sandbox stop $(SANDBOX_ROOT_ARG)

sandbox-status: ## show the sandbox's processes and addresses
	$(SANDBOX_ENV) "$(VENV_PY)" -m fate_sandbox status $(SANDBOX_ROOT_ARG)

# The default sandbox is what inventories/sandbox describes: `make pipeline` takes no ROOT/BASE_PORT.
REPORT_DIR := $(CURDIR)/.sandbox/reports

pipeline: sandbox ## the main job: playbooks/pipeline.yml on the sandbox (migrate, transfer, import, publish), then its report
	$(SANDBOX_ENV) ".venv/bin/ansible-playbook" -i "inventories/sandbox" "playbooks/pipeline.yml" \
	  -e "fate_report_dir='$(REPORT_DIR)'" -e "fate_report_name=pipeline"
	@cat "$(REPORT_DIR)/pipeline.txt"

demo: sandbox ## FATE's manual procedure on the sandbox with the real flow CLI (the baseline the playbooks replace)
	$(SANDBOX_ENV) "$(VENV_PY)" -m fate_sandbox.demo $(SANDBOX_ROOT_ARG)

clean: ## stop the sandbox, remove build/ and .sandbox/ (keeps .venv)
	@if [ -x "$(VENV_PY)" ] && [ -d ".sandbox" ]; then \
	  if $(SANDBOX_ENV) "$(VENV_PY)" -m fate_sandbox stop; then rm -rf -- ".sandbox"; \
	  else echo "sandbox stop failed: .sandbox kept" >&2; fi; \
	else rm -rf -- ".sandbox"; fi
	rm -rf -- "build" "tests/output"

distclean: clean ## clean, and remove .venv and .cache
	rm -rf -- ".venv" ".cache"
