# Targets for the local control plane and the end-to-end suite.
.PHONY: test-e2e
test-e2e:
	@echo "e2e: no end-to-end tests yet"
