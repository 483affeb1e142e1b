# lab targets
.PHONY: test-lab lab-clean
test-lab:
lab:
lab-clean:
