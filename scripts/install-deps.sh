#!/usr/bin/env bash
# Installs every system package rma needs to build, test and run on Debian 12.
# Idempotent: when everything is present it prints nothing and exits 0.
# Usage: scripts/install-deps.sh [--browser]   (--browser adds Chromium for the dashboard browser test)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libpqxx-dev libpistache-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev nlohmann-json3-dev libcli11-dev
  libcurl4-openssl-dev libbenchmark-dev
  postgresql postgresql-contrib
  clang clang-format clang-tidy
  prometheus wrk python3 python3-zmq python3-msgpack procps psmisc docker-compose
)
# Node and npm may come from NodeSource (which conflicts with Debian's npm): only install Debian's when absent.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi
if [[ "${1:-}" == "--browser" ]]; then
  packages+=(chromium chromium-driver)
fi

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
