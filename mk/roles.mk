# roles targets
.PHONY: test-roles lint-ansible
test-roles:
lint-ansible:
