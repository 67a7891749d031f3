# molt — top-level entry points. `make test` is the one command that runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all test lint fmt test-unit crds sync
all: test

## test: everything CI runs — formatting, lints, unit/property tests, then the end-to-end suite
test: lint test-unit test-e2e

lint: deny
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: deny
## deny: licenses, bans and sources of every dependency (deny.toml; advisories need the network)
deny:
	bash scripts/cargo-deny.sh

fmt:
	$(CARGO) fmt --all

test-unit:
	$(CARGO) test -p molt

## crds: regenerate crds/ from the Rust types, then every copy made from it
crds:
	$(CARGO) run --quiet -p molt -- crd > crds/nodeupdateplans.molt.dev.yaml
	$(MAKE) --no-print-directory sync

# One source of truth each: crds/ for the CRD, config/monitoring/ for alerts and dashboard.
# Helm can read files only inside the chart, hence the copies; tests/packaging.rs fails when
# one drifts.
PROMETHEUS_RULE := config/prometheus/prometheus_rule.yaml

## sync: refresh the chart's copies of the CRD, alerts and dashboard, and the PrometheusRule
sync:
	cp crds/nodeupdateplans.molt.dev.yaml charts/molt/files/nodeupdateplans.molt.dev.yaml
	cp config/monitoring/alerts.yaml charts/molt/files/alerts.yaml
	cp config/monitoring/dashboard.json charts/molt/files/dashboard.json
	{ printf '%s\n' \
	    '# Generated from config/monitoring/alerts.yaml by `make sync`; edit that file instead.' \
	    'apiVersion: monitoring.coreos.com/v1' 'kind: PrometheusRule' 'metadata:' \
	    '  name: molt' '  namespace: molt-system' '  labels:' \
	    '    app.kubernetes.io/name: molt' '    app.kubernetes.io/instance: molt' 'spec:'; \
	  grep -v '^#' config/monitoring/alerts.yaml | sed 's/^./  &/'; } > $(PROMETHEUS_RULE)

# Local control plane, simulated nodes and the end-to-end suite.
include e2e/e2e.mk
# The demo (`make demo`) and the measurements in docs/measurements.md.
include e2e/demo.mk
