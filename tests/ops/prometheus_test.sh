#!/usr/bin/env bash
# deploy/prometheus/ with Debian's promtool:   tests/ops/prometheus_test.sh SOURCE_DIR
# The alert rules parse (promtool check rules), behave as their unit tests say (promtool test rules
# rma-alerts.test.yml: every alert firing when it must and silent when it must not), and the example
# prometheus.yml is a valid configuration (checked on a copy whose key file exists).
set -euo pipefail
dir=$(cd "$1/deploy/prometheus" && pwd)
tmp=$(mktemp -d /tmp/rma-prometheus-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
promtool check rules "$dir/rma-alerts.yml"
(cd "$dir" && promtool test rules rma-alerts.test.yml)
cp "$dir/rma-alerts.yml" "$tmp/"
echo "an-admin-key" >"$tmp/rma-admin-key"
sed "s#/etc/prometheus/rma-admin-key#$tmp/rma-admin-key#" "$dir/prometheus.yml" >"$tmp/prometheus.yml"
grep -q "$tmp/rma-admin-key" "$tmp/prometheus.yml" || { echo "FAIL: prometheus.yml names no key file" >&2; exit 1; }
promtool check config "$tmp/prometheus.yml"
