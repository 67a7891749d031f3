#!/usr/bin/env bash
# Makes sure `prometheus` and `promtool` are installed: Debian's `prometheus`
# package, with apt-get, when either is missing (about 20 s). The rule tests and
# the metrics-analysis end-to-end test use them; the service it installs is not
# started (tests start their own server).
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
echo "installing prometheus (for promtool and the metrics e2e test) with apt-get" >&2
sudo=""
[[ $(id -u) == 0 ]] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
