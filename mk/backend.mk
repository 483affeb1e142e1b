# backend targets
.PHONY: lint-backend test-backend
lint-backend:
	@echo "lint-backend: TODO"
test-backend:
	@echo "test-backend: TODO"
