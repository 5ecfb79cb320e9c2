#!/usr/bin/env bash
# Gateway benchmark (docs/benchmarks.md, "Gateway"). Starts a private pool (in-memory broker,
# rma-gateway, one rma-worker with echo and sleep) and the bare Pistache baseline on free ports,
# then measures with wrk, each figure the median of RUNS runs:
#   1. async submissions/s: POST /api/tasks (to a service nobody provides, so only the accept path
#      runs; a fresh pool per run keeps queues small)
#   2. synchronous echo through the gateway: calls/s and p50/p99 at CONC_LOW and CONC_HIGH
#      connections, and the same requests against the bare Pistache handler (the overhead ratio)
#   3. GET /api/tasks/{id} (a gateway -> broker -> gateway round trip, no worker) and /health (answered
#      on the reactor thread) through the gateway vs GET on the bare handler
#   4. SLOW_CALLS concurrent synchronous calls to a backend that takes 2 s (builtin:sleep with
#      enough slots) while a single client measures /health latency
# Usage: bench/gateway_bench.sh [BUILD_DIR]   (default build/test; env RUNS, DURATION, THREADS)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/test}
bin=$build/bin
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
THREADS=${THREADS:-2}        # gateway reactor threads
CONC_LOW=${CONC_LOW:-1}
CONC_HIGH=${CONC_HIGH:-32}
SUBMIT_CONC=${SUBMIT_CONC:-64}
SLOW_CALLS=${SLOW_CALLS:-500}
command -v wrk >/dev/null || { echo "wrk is missing (scripts/install-deps.sh)" >&2; exit 1; }
for b in rma-broker rma-gateway rma-worker bare_pistache; do
  [[ -x $bin/$b ]] || { echo "build $b first: ninja -C $build $b" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

dir=$(mktemp -d /tmp/rma-gateway-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

wait_file() { for _ in $(seq 1 200); do [[ -s $1 ]] && return 0; sleep 0.05; done; return 1; }

# start_pool NAME: broker + gateway (+ worker unless NAME=bare-accept); sets GW (URL) and POOL_PIDS.
start_pool() {
  local name=$1
  rm -f "$dir/$name".*
  "$bin/rma-broker" --workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
    --endpoints-file "$dir/$name.endpoints" --log-level warn >"$dir/$name.broker.log" 2>&1 &
  POOL_PIDS=($!)
  wait_file "$dir/$name.endpoints"
  local workers clients
  workers=$(sed -n 1p "$dir/$name.endpoints")
  clients=$(sed -n 2p "$dir/$name.endpoints")
  "$bin/rma-gateway" --broker "$clients" --listen 127.0.0.1:0 --threads "$THREADS" \
    --port-file "$dir/$name.port" --log-level warn >"$dir/$name.gateway.log" 2>&1 &
  POOL_PIDS+=($!)
  wait_file "$dir/$name.port"
  GW="http://127.0.0.1:$(cat "$dir/$name.port")"
  if [[ $name != accept* ]]; then
    "$bin/rma-worker" --broker "$workers" --worker-id "bench-$name" --data-dir "$dir/$name.worker" \
      --service echo=builtin:echo --service sleep=builtin:sleep --slots "$((SLOW_CALLS + 20))" \
      --log-level warn >"$dir/$name.worker.log" 2>&1 &
    POOL_PIDS+=($!)
    for _ in $(seq 1 200); do
      curl -sf "$GW/api/service/echo" -d ping >/dev/null 2>&1 && break
      sleep 0.05
    done
  fi
  pids+=("${POOL_PIDS[@]}")
}
stop_pool() { kill "${POOL_PIDS[@]}" 2>/dev/null || true; wait "${POOL_PIDS[@]}" 2>/dev/null || true; }

cat >"$dir/submit.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"service":"bench-queue","payload":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"
EOF
cat >"$dir/echo.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"hello":"world"}'
wrk.headers["Content-Type"] = "application/json"
EOF
cat >"$dir/sleep.lua" <<'EOF'
wrk.method = "POST"
wrk.body = "2000"
wrk.headers["X-RMA-Timeout"] = "30"
EOF

# wrk_run OUT ARGS...: runs wrk --latency and writes "rps p50_ms p99_ms max_ms non2xx errors".
wrk_run() {
  local out=$1
  shift
  wrk --latency "$@" >"$out.raw" 2>&1 || true
  python3 - "$out.raw" >"$out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def ms(v):
    n, unit = re.match(r"([\d.]+)(us|ms|s)", v).groups()
    return float(n) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", text).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", text).group(1))
mx = ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", text).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
err = re.search(r"Socket errors:(.*)", text)
print("%.0f %.3f %.3f %.3f %s %s" % (rps, p50, p99, mx, non2xx.group(1) if non2xx else 0,
      err.group(1).strip().replace(" ", "") if err else "none"))
EOF
}
# median FILES...: per column median of the "rps p50 p99 max non2xx errors" lines.
median() {
  python3 - "$@" <<'EOF'
import statistics, sys
rows = [open(f).read().split() for f in sys.argv[1:]]
cols = list(zip(*rows))
med = [statistics.median(float(x) for x in cols[i]) for i in range(4)]
print("%.0f %.3f %.3f %.3f %s %s" % (med[0], med[1], med[2], med[3],
      ",".join(cols[4]), ",".join(cols[5])))
EOF
}

"$bin/bare_pistache" --listen 127.0.0.1:0 --threads "$THREADS" --port-file "$dir/bare.port" \
  >"$dir/bare.log" 2>&1 &
pids+=($!)
wait_file "$dir/bare.port"
BARE="http://127.0.0.1:$(cat "$dir/bare.port")"

echo "== gateway benchmark"
echo "machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "parameters: RUNS=$RUNS DURATION=${DURATION}s gateway THREADS=$THREADS CONC_LOW=$CONC_LOW CONC_HIGH=$CONC_HIGH SUBMIT_CONC=$SUBMIT_CONC SLOW_CALLS=$SLOW_CALLS; wrk $(wrk --version 2>&1 | head -1 | cut -d' ' -f2)"
echo "(figures: median of $RUNS runs; latencies in ms; load generator on the same machine)"

for r in $(seq 1 "$RUNS"); do
  start_pool "accept$r"
  wrk_run "$dir/submit.$r" -t2 -c"$SUBMIT_CONC" -d"${DURATION}s" -s "$dir/submit.lua" "$GW/api/tasks"
  wrk_run "$dir/bare_post.$r" -t2 -c"$SUBMIT_CONC" -d"${DURATION}s" -s "$dir/submit.lua" "$BARE/api/tasks"
  stop_pool
done
start_pool main
for r in $(seq 1 "$RUNS"); do
  for c in "$CONC_LOW" "$CONC_HIGH"; do
    t=$((c < 2 ? 1 : 2))
    wrk_run "$dir/echo_c$c.$r" -t$t -c"$c" -d"${DURATION}s" -s "$dir/echo.lua" "$GW/api/service/echo"
    wrk_run "$dir/bare_echo_c$c.$r" -t$t -c"$c" -d"${DURATION}s" -s "$dir/echo.lua" "$BARE/echo"
  done
  # A fresh task each run: the broker forgets finished tasks beyond max_finished_in_memory.
  task_id=$(curl -s "$GW/api/tasks" -H 'Content-Type: application/json' -d '{"service":"echo","payload":1}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')
  curl -s "$GW/api/tasks/$task_id?wait=5" >/dev/null
  wrk_run "$dir/get_task.$r" -t2 -c"$CONC_HIGH" -d"${DURATION}s" "$GW/api/tasks/$task_id"
  wrk_run "$dir/health.$r" -t2 -c"$CONC_HIGH" -d"${DURATION}s" "$GW/health"
  wrk_run "$dir/bare_get.$r" -t2 -c"$CONC_HIGH" -d"${DURATION}s" "$BARE/health"
done

# Slow backend: SLOW_CALLS calls waiting 2 s each while one client measures /health.
slow_secs=$((DURATION * 2 + 4))
wrk --latency -t2 -c"$SLOW_CALLS" -d"${slow_secs}s" --timeout 30s -s "$dir/sleep.lua" "$GW/api/service/sleep" \
  >"$dir/slow.raw" 2>&1 &
slow_pid=$!
for _ in $(seq 1 100); do
  pending=$(curl -s "$GW/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending_requests"])')
  [[ $pending -ge $SLOW_CALLS ]] && break
  sleep 0.1
done
pending_at_start=$pending
wrk_run "$dir/slow_health" -t1 -c1 -d"${DURATION}s" "$GW/health"
pending_at_end=$(curl -s "$GW/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pending_requests"])')
wait "$slow_pid" || true
slow_rps=$(grep -o 'Requests/sec: *[0-9.]*' "$dir/slow.raw" | awk '{print $2}' || true)
slow_p50=$(grep -E '^ +50%' "$dir/slow.raw" | awk '{print $2}' || true)
slow_non2xx=$(grep -o 'Non-2xx or 3xx responses: *[0-9]*' "$dir/slow.raw" | awk '{print $NF}' || true)
stop_pool

report() {  # report LABEL FILES...
  local label=$1
  shift
  read -r rps p50 p99 mx non2xx errors <<<"$(median "$@")"
  printf "%-44s %10s req/s  p50 %8s  p99 %8s  max %9s  non-2xx %s  socket errors %s\n" \
    "$label" "$rps" "$p50" "$p99" "$mx" "$non2xx" "$errors"
  echo "$rps $p50 $p99" >"$dir/summary.${label//\//_}"
}
echo
report "async submit (gateway, c=$SUBMIT_CONC)" "$dir"/submit.*[0-9]
report "POST same body (bare, c=$SUBMIT_CONC)" "$dir"/bare_post.*[0-9]
for c in "$CONC_LOW" "$CONC_HIGH"; do
  report "sync echo (gateway, c=$c)" "$dir"/echo_c"$c".*[0-9]
  report "echo (bare, c=$c)" "$dir"/bare_echo_c"$c".*[0-9]
done
report "GET /api/tasks/{id} (gateway, c=$CONC_HIGH)" "$dir"/get_task.*[0-9]
report "/health (gateway, c=$CONC_HIGH)" "$dir"/health.*[0-9]
report "GET (bare, c=$CONC_HIGH)" "$dir"/bare_get.*[0-9]
echo
python3 - "$dir" "$SUBMIT_CONC" "$CONC_LOW" "$CONC_HIGH" <<'EOF'
import sys
d, sc, lo, hi = sys.argv[1:]
s = lambda label: [float(x) for x in open(f"{d}/summary.{label.replace('/', '_')}").read().split()]
def ratio(gw, bare):
    g, b = s(gw), s(bare)
    return "throughput %.2fx of bare, p50 %+.3f ms" % (g[0] / b[0], g[1] - b[1])
print("overhead async submit vs bare POST:", ratio(f"async submit (gateway, c={sc})", f"POST same body (bare, c={sc})"))
for c in (lo, hi):
    print(f"overhead sync echo vs bare echo (c={c}):", ratio(f"sync echo (gateway, c={c})", f"echo (bare, c={c})"))
print("overhead /health vs bare GET:", ratio(f"/health (gateway, c={hi})", f"GET (bare, c={hi})"))
EOF
read -r _ h50 h99 hmax _ _ <"$dir/slow_health"
echo
echo "slow backend: $SLOW_CALLS concurrent calls to a 2 s backend (pending at the gateway: $pending_at_start when measuring began, $pending_at_end when it ended; $slow_rps calls/s, call p50 $slow_p50, non-2xx ${slow_non2xx:-0})"
echo "  /health meanwhile (1 client, ${DURATION}s): p50 $h50 ms  p99 $h99 ms  max $hmax ms"
