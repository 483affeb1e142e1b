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
include mk/eval.mk

.PHONY: help test lint
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

lint: lint-backend lint-ansible lint-lab ## all linters

# The one test command (README, .ci/run). Lab hosts are cleaned up even when a step fails.
test: setup ## everything: linters, backend tests, lab smoke, role scenarios, full-stack deploys
	@set -o pipefail; rc=0; start=$$(date +%s); \
	$(MAKE) --no-print-directory -k test-steps || rc=$$?; \
	echo "== make test: $$([ $$rc = 0 ] && echo ok || echo FAILED) in $$(( $$(date +%s) - start ))s"; \
	$(MAKE) --no-print-directory lab-clean >/dev/null 2>&1 || true; \
	exit $$rc

# One after the other (each step already runs two jobs at a time; more would only make them
# slower on two cores). -k: a failing step does not hide how the later ones do.
test-steps: lint test-backend test-lab test-roles test-deploy
