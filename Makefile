# molt — top-level entry points. `make test` is the one command that runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all test lint fmt test-unit crds
all: test

## test: everything CI runs — formatting, lints, unit/property tests, then the end-to-end suite
test: lint test-unit test-e2e

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

test-unit:
	$(CARGO) test -p molt

## crds: regenerate crds/ from the Rust types
crds:
	$(CARGO) run --quiet -p molt -- crd > crds/nodeupdateplans.molt.dev.yaml

# Local control plane, simulated nodes and the end-to-end suite.
include e2e/e2e.mk
# The demo (`make demo`) and the measurements in docs/measurements.md.
include e2e/demo.mk
