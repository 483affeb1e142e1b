# Backend: lint, tests against SQLite and a throwaway PostgreSQL, and a local quickstart.
.PHONY: lint-backend test-backend serve openapi

BACKEND_PATHS := backend tests/backend tests/conftest.py bench
# ruff format --check covers every Python file of the repository (ruff skips what .gitignore
# names: .venv, .cache, ...).
PYTHON_PATHS := .
# Loopback port of the throwaway PostgreSQL cluster `test-backend` starts and stops.
PG_TEST_PORT ?= 55432
# What `test-backend` runs (narrow it while working: make test-backend BACKEND_TESTS=...).
BACKEND_TESTS ?= tests/backend tests/labstandins
SERVE_DIR := $(ROOT)/.cache/serve

lint-backend: venv ## ruff check and mypy (strict) for the backend; ruff format --check for every Python file
	$(VENV)/bin/ruff check $(BACKEND_PATHS)
	$(VENV)/bin/ruff format --check $(PYTHON_PATHS)
	$(VENV)/bin/mypy

# tests/backend/run-with-postgres starts the cluster, runs pytest against it and stops it
# whatever pytest's outcome.
test-backend: venv ## backend tests on SQLite and a throwaway PostgreSQL (127.0.0.1:$(PG_TEST_PORT))
	@tests/backend/run-with-postgres $(PG_TEST_PORT) \
	  $(VENV)/bin/pytest $(BACKEND_TESTS) -q -p no:cacheprovider $(PYTEST_ARGS)

# Embedded defaults: SQLite and Qdrant Edge under .cache/serve, answers composed
# from the passages (no LLM key needed). A key in the environment turns on the LLM.
serve: ## run the API locally with the sample textbook ingested (Ctrl-C stops it)
	@mkdir -p $(SERVE_DIR)
	@cd $(SERVE_DIR) && DATA_DIR=$(SERVE_DIR)/var $(VENV)/bin/textbook migrate
	@cd $(SERVE_DIR) && DATA_DIR=$(SERVE_DIR)/var $(VENV)/bin/textbook ingest
	@echo
	@echo "API on http://127.0.0.1:8000 (docs: http://127.0.0.1:8000/docs). Ask it a question:"
	@echo "  curl -s -X POST http://127.0.0.1:8000/api/v1/auth/register -H 'Content-Type: application/json' \\"
	@echo "       -d '{\"email\": \"me@example.org\", \"password\": \"a long password\"}'"
	@echo "  TOKEN=\$$(curl -s http://127.0.0.1:8000/api/v1/auth/login -d username=me@example.org \\"
	@echo "       --data-urlencode 'password=a long password' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')"
	@echo "  curl -s http://127.0.0.1:8000/api/v1/chat -H \"Authorization: Bearer \$$TOKEN\" \\"
	@echo "       -H 'Content-Type: application/json' -d '{\"question\": \"What is a ROS 2 topic?\"}'"
	@echo "  curl -s 'http://127.0.0.1:8000/api/v1/search?q=quality+of+service'"
	@echo
	@cd $(SERVE_DIR) && DATA_DIR=$(SERVE_DIR)/var GUNICORN_BIND=127.0.0.1:8000 $(VENV)/bin/textbook serve

# The API's contract (docs/openapi.json), checked by tests/backend/api/test_api_contract.py.
openapi: venv ## regenerate docs/openapi.json from the app (after an API change; commit it)
	@$(PY) tools/openapi.py write
