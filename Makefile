# molt — top-level entry points. `make test` is the one command that runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all help test lint fmt test-unit test-rules crds sync
all: test

## help: list the documented targets (the `## target: …` comments of this Makefile and its includes)
help:
	@awk '/^## [A-Za-z0-9_.-]+:/ { sub(/^## /, ""); split($$0, d, ": "); t = d[1]; \
	    sub(/^[^:]*: /, ""); printf "  %-16s %s\n", t, $$0; next } \
	  /^## / && t != "" { sub(/^## /, ""); printf "  %-16s %s\n", "", $$0; next } \
	  { t = "" }' $(MAKEFILE_LIST)

## test: everything CI runs — formatting, lints, unit/property tests, alert-rule tests, then the end-to-end suite
test: lint test-unit test-rules test-e2e

## lint: formatting check, dependency policy and clippy with warnings as errors
lint: deny
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: deny
## deny: licenses, bans and sources of every dependency (deny.toml; advisories need the network)
deny:
	bash scripts/cargo-deny.sh

## fmt: format every crate of the workspace
fmt:
	$(CARGO) fmt --all

## test-unit: molt's unit, property and repository tests
test-unit:
	$(CARGO) test -p molt

## test-rules: `promtool check rules` and `promtool test rules` on the alert rules (installs prometheus if missing)
test-rules:
	bash scripts/promtool.sh

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
	$(CARGO) run --quiet -p molt-e2e --bin prometheus-rule -- config/monitoring/alerts.yaml $(PROMETHEUS_RULE)

# Local control plane, simulated nodes and the end-to-end suite.
include e2e/e2e.mk
# The demo (`make demo`) and the measurements in docs/measurements.md.
include e2e/demo.mk
