# Role scenarios: each role has roles/<role>/molecule/default. `make role-test ROLE=nginx` runs one
# alone, in the foreground. `make test-roles` runs them all, ROLE_JOBS at a time (their lab hosts
# have names of their own), each into reports/test-logs/role-<role>.log; a failure prints its tail.
ROLES_WITH_SCENARIOS := $(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml))
MOLECULE_CMD ?= test
ROLE_JOBS ?= 2
TEST_LOGS := $(ROOT)/reports/test-logs

.PHONY: test-roles role-test lint-ansible $(addprefix role-scenario-,$(ROLES_WITH_SCENARIOS))
test-roles: lab venv ## every role's Molecule scenario (converge, idempotence, verify), ROLE_JOBS at a time
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory -j$(ROLE_JOBS) -k $(addprefix role-scenario-,$(ROLES_WITH_SCENARIOS)); \
	rc=$$?; echo "== test-roles: $$([ $$rc = 0 ] && echo ok || echo FAILED) in $$(( $$(date +%s) - start ))s"; exit $$rc

$(addprefix role-scenario-,$(ROLES_WITH_SCENARIOS)): role-scenario-%:
	@mkdir -p $(TEST_LOGS); log=$(TEST_LOGS)/role-$*.log; start=$$(date +%s); \
	echo "== role $*: molecule $(MOLECULE_CMD) (log: $$log)"; \
	if (cd roles/$* && molecule $(MOLECULE_CMD)) >$$log 2>&1; then \
	  echo "== role $*: ok in $$(( $$(date +%s) - start ))s"; \
	else \
	  echo "== role $*: FAILED after $$(( $$(date +%s) - start ))s; last lines of $$log:"; \
	  tail -n 120 $$log | sed 's/^/   | /'; exit 1; \
	fi

role-test: lab ## one role's scenario: make role-test ROLE=nginx [MOLECULE_CMD=converge]
	@test -n "$(ROLE)" || { echo "usage: make role-test ROLE=<name>"; exit 2; }
	cd roles/$(ROLE) && molecule $(MOLECULE_CMD)

# tools/role_specs.py: each role's meta/argument_specs.yml, defaults/main.yml and README variable
# table agree (names, types, defaults); its test also proves each kind of drift is caught.
ROLE_SPECS_PY := tools/role_specs.py tests/roles

lint-ansible: venv ## ansible-lint (production profile), yamllint, and the role spec drift check
	yamllint -s .
	ansible-lint --profile production
	ruff check $(ROLE_SPECS_PY)
	ruff format --check $(ROLE_SPECS_PY)
	MYPYPATH=tests/helpers mypy --strict $(ROLE_SPECS_PY)
	$(PY) -m pytest -q -p no:cacheprovider tests/roles
