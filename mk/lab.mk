# Test lab (docs/lab.md): systemd lab hosts in the lab's own Docker engine, pebble (ACME), a qemu VM.
# Every make recipe talks to the lab's engine, never to a system Docker.
export DOCKER_HOST := unix:///run/textbook-lab/docker.sock

.PHONY: lab lab-vm lab-vm-stop lab-clean lab-clean-tests test-lab test-lab-vm lint-lab
lab: apt ## lab ready: engine, base images (cached by recipe), pebble, Molecule base config
	@lab/bin/up

lab-vm: lab ## boot the VM lab host (qemu, TCG) and print how to reach it over SSH
	@lab/bin/vm up

lab-vm-stop: ## stop the VM lab host
	@lab/bin/vm stop

lab-clean: ## stop everything the lab started (VM, lab hosts incl. `make up`'s, pebble, engine); caches stay
	@lab/bin/clean

lab-clean-tests: ## remove test runs' lab hosts only (RUN=<id>: one run's); `make up`'s host stays
	@lab/bin/clean-tests $(if $(RUN),--run $(RUN))

test-lab: lab venv ## lab smoke: image cache, boot, reachability, multi-host names, pebble-issued cert on nginx
	@start=$$(date +%s); pytest -q -p no:cacheprovider tests/lab && \
	(cd tests/lab && molecule test --all) && \
	echo "== test-lab: ok in $$(( $$(date +%s) - start ))s"

test-lab-vm: lab venv ## VM smoke: boot the VM, Ansible reaches it through the generated inventory, stop it
	@start=$$(date +%s); rc=0; \
	{ lab/bin/vm up && ansible-playbook -i lab/.state/inventory-vm tests/lab/vm-smoke.yml; } || rc=$$?; \
	lab/bin/vm stop; \
	[ $$rc = 0 ] && echo "== test-lab-vm: ok in $$(( $$(date +%s) - start ))s"; exit $$rc

lint-lab: ## shellcheck the lab and test scripts (Debian package shellcheck)
	@command -v shellcheck >/dev/null || { echo "lint-lab: shellcheck missing (apt-get install shellcheck)"; exit 1; }
	shellcheck -x lab/bin/* tests/deploy/run tests/backend/run-with-postgres
