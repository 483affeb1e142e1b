# Top-level entry points. Each area keeps its targets in mk/<area>.mk.
SHELL := /bin/bash
.DEFAULT_GOAL := help
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)

include mk/setup.mk
include mk/backend.mk
include mk/lab.mk
include mk/roles.mk
include mk/deploy.mk
-include mk/bench.mk

.PHONY: help test lint
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

lint: lint-backend lint-ansible lint-lab ## all linters

# The one test command (README, .ci/run). Lab hosts are cleaned up even when a step fails.
test: setup ## everything but the full-stack deploy: linters, backend tests, lab smoke, role scenarios
	@set -o pipefail; rc=0; \
	$(MAKE) --no-print-directory test-steps || rc=$$?; \
	$(MAKE) --no-print-directory lab-clean >/dev/null 2>&1 || true; \
	exit $$rc

# The full-stack tests (make test-deploy) are not in `make test` yet: their single-host
# deploy has not yet passed in a clean run within the CI budget (see docs/deploy.md).
test-steps: lint test-backend test-lab test-roles
