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

.PHONY: help test test-steps check lint
help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

lint: lint-backend lint-ansible lint-lab ## all linters

# The one test command (README, .ci/run). Every lab host it makes carries its run id
# (TEXTBOOK_TEST_RUN); at the end, even when a step failed, it removes those and only those,
# so a `make up` host survives. It stops the lab engine only if it started it and nothing else
# runs there.
test: setup ## everything: linters, backend tests, lab smoke, role scenarios, full-stack deploys
	@set -o pipefail; rc=0; start=$$(date +%s); \
	export TEXTBOOK_TEST_RUN=$${TEXTBOOK_TEST_RUN:-$$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')}; \
	lab/bin/engine status >/dev/null 2>&1 && stop_engine= || stop_engine=--stop-idle-engine; \
	$(MAKE) --no-print-directory -k test-steps || rc=$$?; \
	echo "== make test: $$([ $$rc = 0 ] && echo ok || echo FAILED) in $$(( $$(date +%s) - start ))s"; \
	lab/bin/clean-tests --run "$$TEXTBOOK_TEST_RUN" $$stop_engine || true; \
	exit $$rc

# lint + backend tests: the quick loop (a few minutes, no lab).
check: setup lint test-backend ## quick loop: every linter and the backend tests (no lab)

# One after the other (each step already runs two jobs at a time; more would only make them
# slower on two cores). -k: a failing step does not hide how the later ones do.
test-steps: lint test-backend test-lab test-roles test-deploy
