# Role scenarios: each role has roles/<role>/molecule/default. `make role-test ROLE=nginx` runs one alone.
ROLES_WITH_SCENARIOS := $(patsubst roles/%/molecule/default/molecule.yml,%,$(wildcard roles/*/molecule/default/molecule.yml))
MOLECULE_CMD ?= test

.PHONY: test-roles role-test lint-ansible
test-roles: lab ## run every role's Molecule scenario (converge, idempotence, verify)
	@set -e; for r in $(ROLES_WITH_SCENARIOS); do \
	  start=$$(date +%s); echo "== role $$r: molecule $(MOLECULE_CMD)"; \
	  (cd roles/$$r && molecule $(MOLECULE_CMD)); \
	  echo "== role $$r: ok in $$(( $$(date +%s) - start ))s"; \
	done

role-test: lab ## one role's scenario: make role-test ROLE=nginx [MOLECULE_CMD=converge]
	@test -n "$(ROLE)" || { echo "usage: make role-test ROLE=<name>"; exit 2; }
	cd roles/$(ROLE) && molecule $(MOLECULE_CMD)

lint-ansible: venv ## ansible-lint (production profile) and yamllint
	yamllint -s .
	ansible-lint --profile production
