# Deploy targets (docs/deploy.md): `make up` / `make down` run deploy.yml against the lab host
# textbook-lab (lab/molecule/up-host.yml); `make test-deploy` runs the full-stack tests in
# tests/deploy on hosts of their own (tests/deploy/run).
LAB_INVENTORY := inventories/lab
UP_HOST := lab/molecule/up-host.yml
QDRANT_ARTIFACT := $(ROOT)/.cache/qdrant-artifact/qdrant-labstandin-1.20.0.tar.gz
DEPLOY_ENV := DOCKER_HOST=unix:///run/textbook-lab/docker.sock ANSIBLE_CONFIG=$(ROOT)/ansible.cfg

.PHONY: up down deploy-lab test-deploy qdrant-artifact compose-images

# The Qdrant LAB STAND-IN artifact (labstandins/qdrant, NOT Qdrant): the real binary cannot be fetched here.
qdrant-artifact: $(QDRANT_ARTIFACT)
$(QDRANT_ARTIFACT): labstandins/qdrant/qdrant_labstandin.py labstandins/qdrant/build_artifact.py
	$(PY) labstandins/qdrant/build_artifact.py $(dir $@)

# Images a compose-mode lab host cannot pull (lab base of the backend image, the Qdrant LAB
# STAND-IN image), built on the lab engine from its Ubuntu 24.04 image (lab/bin/compose-images).
compose-images: lab venv ## images compose-mode lab hosts load (lab Python base, Qdrant LAB STAND-IN image)
	@$(DEPLOY_ENV) PYTHON=$(PY) lab/bin/compose-images $(ROOT)/.cache/compose-images

up: setup lab qdrant-artifact ## lab host + deploy.yml (inventories/lab) + sample textbook; prints the HTTPS URL and an answer
	@start=$$(date +%s); \
	$(DEPLOY_ENV) TEXTBOOK_TEST_RUN= ansible-playbook -i $(LAB_INVENTORY) lab/molecule/create.yml -e @$(UP_HOST) && \
	$(DEPLOY_ENV) ansible-playbook -i $(LAB_INVENTORY) deploy.yml && \
	$(DEPLOY_ENV) $(PY) tests/deploy/smoke.py --inventory $(LAB_INVENTORY) && \
	echo "== up: ok in $$(( $$(date +%s) - start ))s"

down: ## remove the lab host of `make up`
	$(DEPLOY_ENV) ansible-playbook -i $(LAB_INVENTORY) lab/molecule/destroy.yml -e @$(UP_HOST)

# Both topologies on hosts of this run's own, side by side, beside a `make up` host (made with an
# extra release when there is none, then removed; a user's own is left as found), which must
# survive the run and its cleanup (tests/deploy/run; logs in .cache/test-deploy).
test-deploy: lab venv qdrant-artifact e2e-tools compose-images ## full stack on 1 and 4 lab hosts of its own (HTTPS, Q&A, idempotence, bad input); a `make up` host survives it
	@$(DEPLOY_ENV) tests/deploy/run

# `make e2e`: the single-host measurements of tests/deploy/e2e.py (TLS scan with sslyze against
# Mozilla intermediate + HSTS, systemd-analyze security of every listening unit, Lynis,
# schemathesis through Nginx and TLS as a signed-in user, fault drills under CountingLoad) on a
# lab host of its own; JSON under reports/e2e/. The same checks
# run in `make test-deploy` (test_single_host.py). sslyze pins its own cryptography: own venv.
E2E_VENV := $(ROOT)/.cache/e2e-venv
.PHONY: e2e e2e-tools
e2e-tools: $(E2E_VENV)/.installed
$(E2E_VENV)/.installed: tests/deploy/e2e-requirements.txt
	python3 -m venv $(E2E_VENV) && $(E2E_VENV)/bin/pip install -q -r $< && touch $@

e2e: lab venv qdrant-artifact e2e-tools ## deploy.yml on a lab host of its own, then TLS scan, unit exposure, Lynis, API fuzzing, fault drills (JSON under reports/e2e/)
	@export TEXTBOOK_TEST_RUN=$${TEXTBOOK_TEST_RUN:-e2e$$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}; rc=0; \
	$(DEPLOY_ENV) pytest -p no:cacheprovider --timeout=2400 -v -s -k e2e tests/deploy/test_single_host.py || rc=$$?; \
	$(DEPLOY_ENV) lab/bin/clean-tests --run "$$TEXTBOOK_TEST_RUN" || true; \
	echo "== e2e: reports in reports/e2e/"; exit $$rc

# `make e2e-vm` (docs/deploy.md, "The VM path"): the qemu VM lab host (lab/bin/vm, TCG) gets a
# sudoer `deploy`; deploy.yml runs over SSH as that user with become; then HTTPS with pebble's
# certificate, register -> login -> answer with citations, a second run changed=0, a guest
# reboot -> healthy. Timings in reports/e2e/vm.json. 74 min under TCG (run vm3): not part of `make test`.
.PHONY: e2e-vm
e2e-vm: lab venv qdrant-artifact ## deploy.yml over SSH as a sudoer onto the qemu VM; HTTPS, Q&A, changed=0, reboot (slow: not in make test)
	@export TEXTBOOK_TEST_RUN=$${TEXTBOOK_TEST_RUN:-vm$$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')}; rc=0; \
	$(DEPLOY_ENV) TEXTBOOK_E2E_VM=1 pytest -p no:cacheprovider --timeout=14400 -v -s tests/deploy/test_vm_host.py || rc=$$?; \
	$(DEPLOY_ENV) lab/bin/clean-tests --run "$$TEXTBOOK_TEST_RUN" || true; \
	echo "== e2e-vm: timings in reports/e2e/vm.json"; exit $$rc
