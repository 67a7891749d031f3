#!/usr/bin/env bash
# Makes sure the tools the local cluster scripts use are installed: openssl
# (certificates), curl (health checks), flock (util-linux), and a Go toolchain
# new enough for the pinned modules (kwok needs Go 1.26).
set -euo pipefail

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v flock >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  echo "e2e: installing ${missing[*]} with apt-get" >&2
  sudo=""
  [[ $(id -u) == 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

if ! command -v go >/dev/null; then
  echo "e2e: the Go toolchain (1.26 or newer) is required to build the control plane" >&2
  exit 1
fi
v=$(go env GOVERSION)
v=${v#go}
major=${v%%.*} rest=${v#*.}
minor=${rest%%.*}
if ((major < 1 || (major == 1 && minor < 26))); then
  echo "e2e: Go $v is too old; the pinned kwok module needs Go 1.26 or newer" >&2
  exit 1
fi

# Prometheus, for the metrics-analysis test (and promtool, for the alert-rule tests).
bash "$(dirname "${BASH_SOURCE[0]}")/../../scripts/prometheus.sh"
