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
test: setup ## everything: linters, backend tests, lab smoke, role scenarios, full-stack deploy
	@set -o pipefail; rc=0; \
	$(MAKE) --no-print-directory test-steps || rc=$$?; \
	$(MAKE) --no-print-directory lab-clean >/dev/null 2>&1 || true; \
	exit $$rc

# Role scenarios and the full-stack deploy use lab hosts of their own names, so they run side by
# side: most of their time is spent waiting on apt, boots and health gates, not on the CPU.
test-steps: lint test-backend test-lab
	@$(MAKE) --no-print-directory -j2 test-roles test-deploy
