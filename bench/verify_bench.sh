#!/usr/bin/env bash
# The cost of verification by replication (issue 17; figures in docs/benchmarks.md, "Verification").
# Each round runs the same pool twice, one after the other: rma-broker (in memory) with a config
# whose catalog entry for `echo` has no `verify`, then one with `verify: {sample_rate: RATE}`; each
# with WORKERS real rma-worker processes (echo=builtin:echo, --slots SLOTS, each its own credential,
# so any of them may check another's results), driven by bench/pool_bench.cc (transient throughput:
# synchronous SUBMITs, window 2000). It prints both medians, their ratio, the extra attempts the
# broker ran (rma_verifications_total, read from a gateway's /metrics) and the expected cost:
# about the share of results sampled, which starts at 5x RATE for workers on probation.
#   bench/verify_bench.sh [ROUNDS]      default 3
#   RATE=0.05 WORKERS=4 SLOTS=50 TASKS=20000 PAYLOAD=100 BUILD_DIR (default build/bench, Release)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh
rounds=${1:-3}
RATE=${RATE:-0.05}; WORKERS=${WORKERS:-4}; SLOTS=${SLOTS:-50}; TASKS=${TASKS:-20000}
PAYLOAD=${PAYLOAD:-100}
build=${BUILD_DIR:-$root/build/bench}
bin=$build/bin

if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_TESTS=ON -DRMA_BUILD_BENCHMARKS=ON \
    -DRMA_BUILD_DASHBOARD=OFF >/dev/null
fi
cmake --build "$build" --target rma-broker rma-worker rma-gateway pool_bench -j "$(nproc)" >/dev/null

work=$(mktemp -d /tmp/rma-verify-bench.XXXXXX)
pids=()
cleanup() { stop_all; rm -rf "$work"; }
trap cleanup EXIT

echo '{"catalog": [{"service": "echo", "tier": 3}]}' >"$work/off.json"
echo "{\"catalog\": [{\"service\": \"echo\", \"tier\": 3, \"verify\": {\"sample_rate\": $RATE}}]}" >"$work/on.json"

# start_pool NAME CONFIG: a broker, a gateway and WORKERS workers, all registered. Sets CLIENTS and
# GATEWAY (its base URL).
start_pool() {
  local name=$1 config=$2 i
  "$bin/rma-broker" --workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
    --endpoints-file "$work/$name.endpoints" --config "$config" --log-level warn \
    >"$work/$name.broker.log" 2>&1 &
  pids+=($!)
  wait_file "$work/$name.endpoints"
  local workers_ep
  workers_ep=$(sed -n 1p "$work/$name.endpoints")
  CLIENTS=$(sed -n 2p "$work/$name.endpoints")
  "$bin/rma-gateway" --broker "$CLIENTS" --listen 127.0.0.1:0 --port-file "$work/$name.port" \
    --log-level warn >"$work/$name.gateway.log" 2>&1 &
  pids+=($!)
  wait_file "$work/$name.port"
  GATEWAY="http://127.0.0.1:$(cat "$work/$name.port")"
  for i in $(seq "$WORKERS"); do
    "$bin/rma-worker" --broker "$workers_ep" --worker-id "verify-$name-$i" --data-dir "$work/$name.w$i" \
      --service echo=builtin:echo --slots "$SLOTS" --log-level warn >"$work/$name.w$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 400); do
    [[ $("$bin/pool_bench" --clients "$CLIENTS" --count-workers 2>/dev/null || echo 0) -ge $WORKERS ]] && return 0
    sleep 0.05
  done
  echo "workers did not register (see $work/$name.*.log)" >&2
  return 1
}
# The broker's count of one verification outcome, from the gateway's /metrics.
verifications() {
  curl -s "$GATEWAY/metrics" | sed -n "s/^rma_verifications_total{outcome=\"$1\"} \([0-9]*\).*/\1/p"
}

echo "== verify_bench: rounds=$rounds rate=$RATE workers=$WORKERS slots=$SLOTS tasks=$TASKS payload=${PAYLOAD}B"
echo "== machine: nproc=$(nproc), load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
off=() on=() sampled=()
for round in $(seq "$rounds"); do
  echo "-- round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for mode in off on; do
    start_pool "$mode$round" "$work/$mode.json"
    out=$("$bin/pool_bench" --clients "$CLIENTS" --mode throughput --tasks "$TASKS" --payload "$PAYLOAD")
    tput=$(sed -n 's/.* tasks_per_s=\([0-9.]*\).*/\1/p' <<<"$out" | head -n1)
    if [[ $mode == off ]]; then
      off+=("$tput")
      echo "   verify off: $tput tasks/s"
    else
      on+=("$tput")
      s=$(verifications sampled)
      sampled+=("$s")
      echo "   verify on (sample_rate $RATE): $tput tasks/s; results sampled: ${s:-?} of $TASKS" \
        "(agreed $(verifications agreed), tie_broken $(verifications tie_broken)," \
        "unverified $(verifications unverified))"
    fi
    stop_all
  done
done
moff=$(echo "${off[*]}" | median)
mon=$(echo "${on[*]}" | median)
msampled=$(echo "${sampled[*]}" | median)
echo "== median over $rounds rounds: off $moff tasks/s, on $mon tasks/s: on/off = $(awk -v a="$mon" -v b="$moff" 'BEGIN {printf "%.3f", a / b}')"
echo "== extra attempts (replicas) per task: $(awk -v s="$msampled" -v n="$TASKS" 'BEGIN {printf "%.3f", s / n}');" \
  "expected throughput ratio if each costs one attempt: $(awk -v s="$msampled" -v n="$TASKS" 'BEGIN {printf "%.3f", 1 / (1 + s / n)}')"
echo "== load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
