#!/usr/bin/env bash
# Installs every system package rma needs to build, test and run on Debian 12 — all from Debian's own
# archive (no third-party repositories: the dashboard builds with Debian's nodejs 18 and npm 9).
# Idempotent: when everything is present it prints nothing and exits 0.
# Usage: scripts/install-deps.sh [--browser | --bench | --build-only]
#   --browser     also Chromium, for the dashboard's browser test
#   --bench       also RabbitMQ and its C client (librabbitmq), the peer bench/pool_bench.sh compares with
#   --build-only  only what `cmake --build` needs (compilers, libraries, node, npm, help2man): the
#                 container build stage (compose/Dockerfile) uses it
set -euo pipefail

build=(
  build-essential cmake ninja-build pkg-config git ca-certificates file help2man
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libpqxx-dev libpistache-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev
  libcurl4-openssl-dev libbenchmark-dev libssl-dev libabsl-dev
)
# Tests, the demo and the deployment checks: PostgreSQL, linters, promtool (prometheus), the compose
# validator, packaging (lintian; systemd-analyze from systemd), the TLS proxy test (nginx, openssl).
# nginx: on a machine booted with systemd, Debian starts its default site on port 80 when it installs
# nginx; the tests run their own nginx on free ports and need nothing from that one.
test=(
  curl postgresql postgresql-contrib
  clang clang-format clang-tidy
  prometheus wrk python3 python3-zmq python3-msgpack procps psmisc docker-compose
  lintian systemd nginx openssl tcpdump
)
mode=${1:-}
case "$mode" in
  "") packages=("${build[@]}" "${test[@]}") ;;
  --browser) packages=("${build[@]}" "${test[@]}" chromium chromium-driver) ;;
  --bench) packages=("${build[@]}" "${test[@]}" rabbitmq-server librabbitmq-dev) ;;
  --build-only) packages=("${build[@]}") ;;
  *) echo "usage: $0 [--browser | --bench | --build-only]" >&2; exit 2 ;;
esac
# Debian's nodejs and npm, unless a node with npm is already there (a NodeSource node ships its own
# npm and conflicts with Debian's npm package). Any node >= 18.19 builds the dashboard.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
