# Local control plane and the end-to-end suite; included by the top-level Makefile.
# See docs/local-cluster.md.
E2E_CLUSTER := bash e2e/cluster.sh

.PHONY: e2e-deps e2e-tools e2e-tools-capi e2e-build cluster-up cluster-down cluster-status \
	capi-up capi-down test-e2e

## e2e-deps: system tools the local cluster needs (installed with apt-get when missing)
e2e-deps:
	@bash e2e/scripts/deps.sh

## e2e-tools: build etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
## kubectl and kwok from their pinned Go modules, or reuse them from the cache
e2e-tools: e2e-deps
	$(E2E_CLUSTER) build

## e2e-tools-capi: build the Cluster API core manager from its pinned Go module, or reuse it
## from the cache (only the Cluster API suites need it; test-e2e runs them)
e2e-tools-capi: e2e-deps
	$(E2E_CLUSTER) build capi

## e2e-build: the control-plane binaries, molt itself, plus the harness, fault mirror, kwok-machine and tests
e2e-build: e2e-tools
	$(CARGO) build -p molt -p molt-e2e --bins --tests

## cluster-up: start the local cluster on 127.0.0.1 (KUBECONFIG: target/e2e-cluster/kubeconfig)
cluster-up: e2e-build
	$(E2E_CLUSTER) up

## cluster-down: stop the processes cluster-up started and remove its state
cluster-down:
	$(E2E_CLUSTER) down

## cluster-status: the recorded processes of the local cluster and whether they run
cluster-status:
	$(E2E_CLUSTER) status

## capi-up: Cluster API and the kwok-machine provider on the running local cluster
capi-up: e2e-tools-capi
	$(E2E_CLUSTER) capi-up

## capi-down: stop Cluster API and kwok-machine and remove their webhooks (cluster-down does too)
capi-down:
	$(E2E_CLUSTER) capi-down

## test-e2e: start a fresh cluster, run the end-to-end tests, stop the cluster (also on failure)
test-e2e: e2e-build e2e-tools-capi
	CARGO="$(CARGO)" bash e2e/scripts/test.sh
