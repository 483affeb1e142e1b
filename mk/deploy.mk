# Deploy targets (docs/deploy.md): `make up` / `make down` run deploy.yml against a lab host;
# `make test-deploy` runs the full-stack tests in tests/deploy.
LAB_INVENTORY := inventories/lab
QDRANT_ARTIFACT := $(ROOT)/.cache/qdrant-artifact/qdrant-labstandin-1.20.0.tar.gz
DEPLOY_ENV := DOCKER_HOST=unix:///run/textbook-lab/docker.sock ANSIBLE_CONFIG=$(ROOT)/ansible.cfg

.PHONY: up down deploy-lab test-deploy qdrant-artifact

# The Qdrant LAB STAND-IN artifact (labstandins/qdrant, NOT Qdrant): the real binary cannot be fetched here.
qdrant-artifact: $(QDRANT_ARTIFACT)
$(QDRANT_ARTIFACT): labstandins/qdrant/qdrant_labstandin.py labstandins/qdrant/build_artifact.py
	$(PY) labstandins/qdrant/build_artifact.py $(dir $@)

up: setup lab qdrant-artifact ## lab host + deploy.yml (inventories/lab) + sample textbook; prints the HTTPS URL and an answer
	@start=$$(date +%s); \
	$(DEPLOY_ENV) ansible-playbook -i $(LAB_INVENTORY) lab/molecule/create.yml -e @tests/deploy/lab-single.yml && \
	$(DEPLOY_ENV) ansible-playbook -i $(LAB_INVENTORY) deploy.yml && \
	$(DEPLOY_ENV) $(PY) tests/deploy/smoke.py --inventory $(LAB_INVENTORY) && \
	echo "== up: ok in $$(( $$(date +%s) - start ))s"

down: ## remove the lab host of `make up`
	$(DEPLOY_ENV) ansible-playbook -i $(LAB_INVENTORY) lab/molecule/destroy.yml -e @tests/deploy/lab-single.yml

# The two topologies use lab hosts of their own names and run side by side (most of their time is
# apt, boots and health gates); each writes its own log, shown when it fails.
test-deploy: lab venv qdrant-artifact ## full stack: deploy.yml on 1 and 4 lab hosts, HTTPS, Q&A, idempotence, bad input
	@start=$$(date +%s); mkdir -p $(ROOT)/.cache/test-deploy; rc=0; \
	for t in single_host four_hosts; do \
	  $(DEPLOY_ENV) pytest -p no:cacheprovider --timeout=2400 -v -s tests/deploy/test_$$t.py \
	    >$(ROOT)/.cache/test-deploy/$$t.log 2>&1 & eval "pid_$$t=$$!"; \
	done; \
	for t in single_host four_hosts; do \
	  if eval "wait \$$pid_$$t"; then grep -E '(PASSED|XFAIL|rc=)' $(ROOT)/.cache/test-deploy/$$t.log; \
	  else rc=1; tail -150 $(ROOT)/.cache/test-deploy/$$t.log; fi; \
	done; \
	echo "== test-deploy: rc=$$rc in $$(( $$(date +%s) - start ))s"; exit $$rc
