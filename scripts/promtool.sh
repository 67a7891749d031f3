#!/usr/bin/env bash
# `promtool check rules` and `promtool test rules` on molt's alert rules
# (config/monitoring/alerts.yaml and its unit tests, alerts_test.yaml).
# promtool comes with Prometheus: installed with apt-get (Debian's `prometheus`
# package, also used by the end-to-end tests) when it is missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/prometheus.sh
promtool check rules config/monitoring/alerts.yaml
promtool test rules config/monitoring/alerts_test.yaml
