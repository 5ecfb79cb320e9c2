#!/usr/bin/env bash
# RabbitMQ on the rma task-pool pattern (bench/rabbit_bench.c: the client publishes a task, a
# worker consumes it, publishes a reply to the client's reply queue and acks): transient
# throughput, transient latency, durable throughput and durable latency (durable queues,
# persistent messages, publisher confirms), one run each, against a private node that
# bench/rabbitmq.sh starts in a temporary directory and stops on exit. Prints nproc and the load
# average (the machine may be shared), then one summary line per run ("rabbitmq mode=...").
#   bench/rabbit_bench.sh
#   WORKERS=2 SLOTS=100 TASKS=20000 WINDOW=2000 PAYLOAD=100 SAMPLES=2000 bench/rabbit_bench.sh
# Needs rabbitmq-server and librabbitmq-dev (scripts/install-deps.sh --bench). Compiles
# rabbit_bench with cc into BUILD_DIR (default build/bench) when missing or older than its source.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
workers=${WORKERS:-2}; slots=${SLOTS:-100}; tasks=${TASKS:-20000}; window=${WINDOW:-2000}
payload=${PAYLOAD:-100}; samples=${SAMPLES:-2000}
build=${BUILD_DIR:-$root/build/bench}
bin="$build/rabbit_bench"

mkdir -p "$build"
if [[ ! -x "$bin" || bench/rabbit_bench.c -nt "$bin" ]]; then
  cc -std=c11 -O2 -Wall -o "$bin" bench/rabbit_bench.c -lrabbitmq -lpthread
fi

work=$(mktemp -d /tmp/rma-rabbit-bench.XXXXXX)
cleanup() {
  bash bench/rabbitmq.sh stop "$work/node" || true
  rm -rf "$work"
}
trap cleanup EXIT
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
echo "== machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average $(loadavg)"
started=$(date +%s)
url=$(bash bench/rabbitmq.sh start "$work/node")
port=${url##*:}
version=$(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo unknown)
erlang=$(cat /usr/lib/erlang/releases/*/OTP_VERSION 2>/dev/null | head -n1 || echo unknown)
echo "== RabbitMQ $version (Erlang/OTP $erlang) at $url, started in $(($(date +%s) - started)) s;" \
  "default durability (classic queues, fsync before publisher confirms)"
echo "== parameters: workers=$workers slots=$slots tasks=$tasks window=$window payload=${payload}B samples=$samples (+200 warm-up)"
common=(--port "$port" --workers "$workers" --slots "$slots" --payload "$payload")
"$bin" "${common[@]}" --mode throughput --tasks "$tasks" --window "$window"
"$bin" "${common[@]}" --mode latency --samples "$samples"
"$bin" "${common[@]}" --mode throughput --tasks "$tasks" --window "$window" --durable
"$bin" "${common[@]}" --mode latency --samples "$samples" --durable
beam=$(cat "$work/node/beam.pid")
echo "== RabbitMQ peak RSS $(awk '/^VmHWM:/ {print int($2/1024)}' "/proc/$beam/status") MiB; load average $(loadavg)"
