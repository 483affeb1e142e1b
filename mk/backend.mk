# Backend: lint, tests against SQLite and a throwaway PostgreSQL, and a local quickstart.
.PHONY: lint-backend test-backend serve

BACKEND_PATHS := backend tests/backend tests/conftest.py bench
# Loopback port of the throwaway PostgreSQL cluster `test-backend` starts and stops.
PG_TEST_PORT ?= 55432
# What `test-backend` runs (narrow it while working: make test-backend BACKEND_TESTS=...).
BACKEND_TESTS ?= tests/backend tests/labstandins
SERVE_DIR := $(ROOT)/.cache/serve

lint-backend: ## ruff check, ruff format --check, mypy (strict) for the backend
	$(VENV)/bin/ruff check $(BACKEND_PATHS)
	$(VENV)/bin/ruff format --check backend/textbook/main.py backend/textbook/api \
		backend/textbook/core backend/textbook/models.py backend/textbook/llm.py \
		backend/textbook/cli.py backend/textbook/gunicorn_conf.py backend/textbook/migrations \
		tests/backend/api tests/backend/core tests/backend/*.py tests/conftest.py
	$(VENV)/bin/mypy

# initdb refuses to run as root, so as root the cluster runs as the postgres user. The
# server is stopped by its pid (and its directory removed) whatever pytest's outcome.
test-backend: ## backend tests on SQLite and a throwaway PostgreSQL (127.0.0.1:$(PG_TEST_PORT))
	@set -euo pipefail; \
	pgbin=$$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); \
	test -x "$$pgbin/initdb" || { echo "test-backend: PostgreSQL server binaries not found" >&2; exit 1; }; \
	dir=$$(mktemp -d /tmp/textbook-pg.XXXXXX); chmod 755 "$$dir"; \
	as_pg=(); if [ "$$(id -u)" = 0 ]; then chown postgres: "$$dir"; as_pg=(runuser -u postgres --); fi; \
	pid=""; \
	cleanup() { \
	  if [ -n "$$pid" ] && kill -0 "$$pid" 2>/dev/null; then \
	    kill -INT "$$pid"; for _ in $$(seq 100); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.1; done; \
	  fi; rm -rf "$$dir"; }; \
	trap cleanup EXIT; \
	"$${as_pg[@]}" "$$pgbin/initdb" -D "$$dir/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null; \
	"$${as_pg[@]}" "$$pgbin/pg_ctl" -D "$$dir/data" -l "$$dir/server.log" -w -t 30 \
	  -o "-h 127.0.0.1 -p $(PG_TEST_PORT) -k $$dir -F -c fsync=off -c full_page_writes=off" start >/dev/null; \
	pid=$$(head -n 1 "$$dir/data/postmaster.pid"); \
	echo "test-backend: PostgreSQL $$($$pgbin/postgres --version | awk '{print $$3}') on 127.0.0.1:$(PG_TEST_PORT) (pid $$pid)"; \
	TEST_DATABASE_URL="postgresql+psycopg2://postgres@127.0.0.1:$(PG_TEST_PORT)/postgres" \
	  $(VENV)/bin/pytest $(BACKEND_TESTS) -q -p no:cacheprovider $(PYTEST_ARGS)

# Embedded defaults: SQLite and Qdrant's local mode under .cache/serve, answers composed
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
