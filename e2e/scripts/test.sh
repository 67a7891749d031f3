#!/usr/bin/env bash
# Runs the end-to-end suite on a fresh local cluster and always stops the
# cluster afterwards, whether the tests pass, fail or are interrupted. A cluster
# of this checkout that already runs is replaced (`cluster.sh up --replace`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

CARGO=${CARGO:-cargo}
STATE=${MOLT_CLUSTER_DIR:-$PWD/target/e2e-cluster}
cluster_down() {
  local rc=$1
  # What the cluster used, for the record (and for debugging a failure).
  bash e2e/cluster.sh status || true
  if ((rc != 0)) && [[ -d $STATE/logs ]]; then
    # Kept for a look after the state is removed.
    rm -rf target/e2e-logs && cp -r "$STATE/logs" target/e2e-logs || true
    echo "cluster logs kept in target/e2e-logs" >&2
    for f in "$STATE"/logs/*.log; do
      echo "---- last lines of $f" >&2
      tail -n 20 "$f" >&2 || true
    done
  fi
  bash e2e/cluster.sh down || true
}
trap 'cluster_down $?' EXIT
trap 'exit 130' INT TERM

# A fresh cluster, whatever runs: this stops (and wipes) a cluster started by `make cluster-up`.
bash e2e/cluster.sh up --replace
# Two scenarios at a time: each runs its own molt next to the control plane on two cores.
"$CARGO" test -p molt-e2e -- --test-threads=2
