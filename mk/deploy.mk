# deploy targets
.PHONY: test-deploy
test-deploy:
