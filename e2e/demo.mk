# `make demo` and `make demo-measure`; included by the top-level Makefile. See docs/demo.md.
#
# Both build molt and the demo (e2e/src/bin/demo), build the control-plane binaries if they are not
# cached, start the local cluster unless it runs already (the MOLT_CLUSTER_DIR and MOLT_*_PORT
# variables of e2e/cluster.sh apply), and leave it running: `make cluster-down` stops it.

.PHONY: demo demo-measure

DEMO_RUNS ?= 7

## demo: roll a 6-node pool to a new image, then watch molt roll back a bad one (a few minutes)
demo: e2e-tools
	$(CARGO) build --quiet -p molt -p molt-e2e --bins
	$(CARGO) run --quiet -p molt-e2e --bin demo

## demo-measure: detection latency and roll-forward timings (docs/measurements.md)
demo-measure: e2e-tools
	$(CARGO) build --quiet -p molt -p molt-e2e --bins
	$(CARGO) run --quiet -p molt-e2e --bin demo -- --measure --runs $(DEMO_RUNS)
