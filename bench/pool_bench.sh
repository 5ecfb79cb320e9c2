#!/usr/bin/env bash
# The whole path, the way users run it, against RabbitMQ in the same run (issue 14; figures in
# docs/benchmarks.md, "The whole path against RabbitMQ"). Each round measures, one after another on
# this machine:
#   rma       rma-broker + WORKERS real rma-worker processes (echo=builtin:echo, --slots SLOTS),
#             driven by bench/pool_bench.cc (a C++ client on the client protocol):
#               transient throughput (SUBMIT sync, window 2000) and one-at-a-time round trip;
#               durable (broker --db on a private PostgreSQL, fsync on): throughput (SUBMIT async
#               with wait_ms) and one-at-a-time acknowledgement (SUBMIT -> ACCEPTED, after the
#               commit) and completion (SUBMIT -> TASK_INFO with the result);
#   gateway   the same pool behind rma-gateway: wrk with GATEWAY_CONNS connections posting
#             POST /api/tasks?wait=10 (async tasks, answered with the result) for GATEWAY_S s;
#             tasks/s counted from 200 answers only;
#   rabbitmq  RabbitMQ from Debian (a private node, bench/rabbitmq.sh) driven by bench/rabbit_bench.c
#             (librabbitmq): publish + consume + reply with WORKERS consumer connections (prefetch
#             SLOTS), transient and durable (persistent messages, publisher confirms).
# and prints the median of ROUNDS rounds of each figure with the ratio rma / RabbitMQ, nproc and the
# load average.
#   bench/pool_bench.sh [ROUNDS]            default 3
#   WORKERS=2 SLOTS=100 TASKS=20000 PAYLOAD=100 SAMPLES=2000 GATEWAY_CONNS=64 GATEWAY_S=5
#   SKIP_RABBIT=1 (rma only)  BUILD_DIR (default build/bench, Release)
#   BASE_BIN=DIR  also measure the rma rows with the rma-broker and rma-worker in DIR (a build of the
#                 previous commit: `git worktree add /tmp/base HEAD~1` and build it there)
# Needs `scripts/install-deps.sh --bench` (RabbitMQ, librabbitmq, wrk, PostgreSQL).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh
rounds=${1:-3}
WORKERS=${WORKERS:-2}; SLOTS=${SLOTS:-100}; TASKS=${TASKS:-20000}; PAYLOAD=${PAYLOAD:-100}
SAMPLES=${SAMPLES:-2000}; GATEWAY_CONNS=${GATEWAY_CONNS:-64}; GATEWAY_S=${GATEWAY_S:-5}
SKIP_RABBIT=${SKIP_RABBIT:-0}
build=${BUILD_DIR:-$root/build/bench}
bin=$build/bin

for tool in wrk psql cc; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh --bench" >&2; exit 1; }
done
if [[ $SKIP_RABBIT != 1 ]] && ! command -v rabbitmq-server >/dev/null; then
  echo "RabbitMQ is missing: run scripts/install-deps.sh --bench (or SKIP_RABBIT=1)" >&2; exit 1
fi
# An existing build directory is used as it is configured (it should be Release).
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_TESTS=ON -DRMA_BUILD_BENCHMARKS=ON \
    -DRMA_BUILD_DASHBOARD=OFF >/dev/null
fi
cmake --build "$build" --target rma-broker rma-worker rma-gateway pool_bench broker_bench -j "$(nproc)" >/dev/null
if [[ $SKIP_RABBIT != 1 ]]; then
  cc -O2 -o "$bin/rabbit_bench" bench/rabbit_bench.c -lrabbitmq -lpthread
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d /tmp/rma-pool-bench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  stop_all
  [[ $SKIP_RABBIT != 1 ]] && bash bench/rabbitmq.sh stop "$work/rabbit" >/dev/null 2>&1 || true
  bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

url=$(bash scripts/pg.sh start "$work/pg")
base=${url%/*}
q() { psql -X -q -t -A "$url" -c "$1"; }
if [[ $SKIP_RABBIT != 1 ]]; then
  amqp=$(bash bench/rabbitmq.sh start "$work/rabbit")
  rport=${amqp##*:}
fi

# start_pool NAME [DB]: a broker (with --db DB when given) and WORKERS workers from $pool_bin, all
# registered. Sets CLIENTS (the broker's client endpoint).
pool_bin=$bin
start_pool() {
  local name=$1 db=${2:-} i
  rm -f "$work/$name.endpoints"
  local args=(--workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*'
    --endpoints-file "$work/$name.endpoints")
  # With a database, info: the broker's last line counts its commits.
  if [[ -n $db ]]; then args+=(--db "$db" --log-level info); else args+=(--log-level warn); fi
  "$pool_bin/rma-broker" "${args[@]}" >"$work/$name.broker.log" 2>&1 &
  pids+=($!)
  wait_file "$work/$name.endpoints"
  local workers_ep
  workers_ep=$(sed -n 1p "$work/$name.endpoints")
  CLIENTS=$(sed -n 2p "$work/$name.endpoints")
  for i in $(seq "$WORKERS"); do
    "$pool_bin/rma-worker" --broker "$workers_ep" --worker-id "bench-$name-$i" --data-dir "$work/$name.w$i" \
      --service echo=builtin:echo --slots "$SLOTS" --log-level warn >"$work/$name.w$i.log" 2>&1 &
    pids+=($!)
  done
  # Registered when the broker lists them all.
  for _ in $(seq 400); do
    local live
    live=$("$bin/pool_bench" --clients "$CLIENTS" --count-workers 2>/dev/null || echo 0)
    [[ $live -ge $WORKERS ]] && return 0
    sleep 0.05
  done
  echo "workers did not register (see $work/$name.*.log)" >&2
  return 1
}

figure() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" | head -n1; }
# Context switches of every thread of the given processes (where the time of a lone round trip
# goes on a VM: each wake-up of a sleeping thread costs more than the work).
ctxsw() {
  local p total=0
  for p in "$@"; do
    total=$((total + $(cat /proc/"$p"/task/*/status 2>/dev/null |
      awk '/ctxt_switches/ {n += $2} END {print n + 0}')))
  done
  echo "$total"
}
results=$work/results
: >"$results"
record() { echo "$1 $2" >>"$results"; }  # KEY VALUE

echo "== pool_bench: rounds=$rounds workers=$WORKERS slots=$SLOTS tasks=$TASKS payload=${PAYLOAD}B samples=$SAMPLES gateway_conns=$GATEWAY_CONNS gateway_s=$GATEWAY_S"
echo "== machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== PostgreSQL $(q 'SHOW server_version'): fsync=$(q 'SHOW fsync') synchronous_commit=$(q 'SHOW synchronous_commit')"
# The floor under a durable acknowledgement: one client committing one-row transactions, alone.
pgbench=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)/pgbench
q "CREATE TABLE fsync_probe (x int)"
echo "INSERT INTO fsync_probe VALUES (1);" >"$work/probe.sql"
echo "== one-row commit latency alone (pgbench, 1 client, 3 s): average $("$pgbench" -n -c 1 -T 3 -f "$work/probe.sql" "$url" 2>/dev/null | sed -n 's/latency average = \(.*\)/\1/p')"
q "DROP TABLE fsync_probe"
[[ $SKIP_RABBIT != 1 ]] && echo "== RabbitMQ $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null), librabbitmq $(dpkg-query -W -f='${Version}' librabbitmq-dev 2>/dev/null)"

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.path = "/api/tasks?wait=10"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"service":"echo","payload":"$(head -c "$PAYLOAD" /dev/zero | tr '\0' 'x')"}'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; other = 0 end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local o, n = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); n = n + t:get("other") end
  io.write(string.format("gateway ok=%d other=%d p50_us=%d\n", o, n, latency:percentile(50)))
end
LUA

common=(--tasks "$TASKS" --payload "$PAYLOAD" --samples "$SAMPLES")
# measure_rma PREFIX BIN [pool_bench durable flags]: the five rma rows with the broker and workers
# of BIN (this commit's, or BASE_BIN's), recorded under PREFIX.
measure_rma() {
  local p=$1 out before switches
  pool_bin=$2
  shift 2
  start_pool "$p-t$round"
  out=$("$bin/pool_bench" --clients "$CLIENTS" --mode throughput "${common[@]}"); echo "$p: $(tail -n1 <<<"$out")"
  record "${p}_t_tput" "$(figure tasks_per_s <<<"$out")"
  before=$(ctxsw "${pids[@]}")
  out=$("$bin/pool_bench" --clients "$CLIENTS" --mode latency "${common[@]}"); echo "$p: $(tail -n1 <<<"$out")"
  switches=$(( $(ctxsw "${pids[@]}") - before ))
  echo "   context switches in the broker and workers: $(awk -v s="$switches" -v n="$((SAMPLES + 200))" 'BEGIN {printf "%.1f", s / n}') per round trip"
  record "${p}_t_p50" "$(figure p50_us <<<"$out")"
  stop_all
  q "CREATE DATABASE bench_${p}_$round"
  start_pool "$p-d$round" "$base/bench_${p}_$round"
  out=$("$bin/pool_bench" --clients "$CLIENTS" --mode throughput --durable "$@" "${common[@]}"); echo "$p: $(tail -n1 <<<"$out")"
  record "${p}_d_tput" "$(figure tasks_per_s <<<"$out")"
  out=$("$bin/pool_bench" --clients "$CLIENTS" --mode latency --durable "$@" "${common[@]}"); echo "$p: $(tail -n1 <<<"$out")"
  record "${p}_d_ack" "$(figure ack_p50_us <<<"$out")"
  record "${p}_d_p50" "$(figure p50_us <<<"$out")"
  stop_all
  echo "   $(grep -o 'store: [0-9]* commit(s).*per commit' "$work/$p-d$round.broker.log" | tail -n1) (both durable runs: $TASKS + $((SAMPLES + 200)) tasks)"
  q "DROP DATABASE bench_${p}_$round"
  pool_bin=$bin
}

for round in $(seq "$rounds"); do
  echo "-- round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  measure_rma rma "$bin"
  # The previous commit's broker and workers, same client (its broker has no SUBMIT wait_ms: the
  # durable rows ask with GET after ACCEPTED, the way clients did).
  [[ -n ${BASE_BIN:-} ]] && measure_rma base "$BASE_BIN" --get-wait
  # The floor of a round trip through libzmq on this machine: broker_bench's in-process echo worker
  # (no worker process at all), one synchronous task at a time.
  out=$("$bin/broker_bench" --broker-bin "$bin/rma-broker" --log-dir "$work" latency --runs 1 --samples "$SAMPLES" 2>&1)
  echo "broker_bench (in-process worker): $(grep 'latency median' <<<"$out")"
  record floor_p50 "$(sed -n 's/.*median of runs: p50 \([0-9.]*\) us.*/\1/p' <<<"$out")"
  # the gateway (in-memory broker: async tasks, answered with their result)
  start_pool "g$round"
  rm -f "$work/g$round.port"
  "$bin/rma-gateway" --broker "$CLIENTS" --listen 127.0.0.1:0 --port-file "$work/g$round.port" \
    --log-level warn >"$work/g$round.gateway.log" 2>&1 &
  pids+=($!)
  wait_file "$work/g$round.port"
  gw="http://127.0.0.1:$(cat "$work/g$round.port")"
  out=$(wrk -t 2 -c "$GATEWAY_CONNS" -d "${GATEWAY_S}s" -s "$work/post.lua" "$gw" 2>&1)
  ok=$(figure ok <<<"$out"); other=$(figure other <<<"$out")
  echo "gateway POST /api/tasks?wait=10: $ok tasks completed (200) and $other other answers in ${GATEWAY_S} s"
  record rma_g_tput "$(awk -v n="$ok" -v s="$GATEWAY_S" 'BEGIN {printf "%.0f", n / s}')"
  record rma_g_p50 "$(figure p50_us <<<"$out")"
  stop_all
  if [[ $SKIP_RABBIT != 1 ]]; then
    rb=("$bin/rabbit_bench" --host 127.0.0.1 --port "$rport" --workers "$WORKERS" --slots "$SLOTS" "${common[@]}")
    out=$("${rb[@]}" --mode throughput); echo "$out" | tail -n1
    record rmq_t_tput "$(figure tasks_per_s <<<"$out")"
    out=$("${rb[@]}" --mode latency); echo "$out" | tail -n1
    record rmq_t_p50 "$(figure p50_us <<<"$out")"
    out=$("${rb[@]}" --mode throughput --durable); echo "$out" | tail -n1
    record rmq_d_tput "$(figure tasks_per_s <<<"$out")"
    out=$("${rb[@]}" --mode latency --durable); echo "$out" | tail -n1
    record rmq_d_ack "$(figure ack_p50_us <<<"$out")"
    record rmq_d_p50 "$(figure p50_us <<<"$out")"
  fi
done

echo "== medians of $rounds round(s); nproc=$(nproc); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" <<'PY'
import statistics, sys
vals = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition(" ")
    if v:
        vals.setdefault(k, []).append(float(v))
med = lambda k: statistics.median(vals[k]) if k in vals else None
rows = [
    ("transient throughput (tasks/s)", "rma_t_tput", "rmq_t_tput", True),
    ("transient one-at-a-time round trip p50 (us)", "rma_t_p50", "rmq_t_p50", False),
    ("  its floor: broker_bench, in-process worker (us)", "floor_p50", None, False),
    ("durable throughput (tasks/s)", "rma_d_tput", "rmq_d_tput", True),
    ("durable one-at-a-time acknowledgement p50 (us)", "rma_d_ack", "rmq_d_ack", False),
    ("durable one-at-a-time completion p50 (us)", "rma_d_p50", "rmq_d_p50", False),
    ("gateway, async tasks completed (tasks/s)", "rma_g_tput", None, True),
    ("gateway, POST ?wait p50 (us)", "rma_g_p50", None, False),
]
has_base = any(k.startswith("base_") for k in vals)
print("| path | rma | RabbitMQ | rma / RabbitMQ | rma ahead? |" + (" previous commit | rma / previous |" if has_base else ""))
print("|---|---|---|---|---|" + ("---|---|" if has_base else ""))
fmt = lambda v: "" if v is None else f"{v:.0f}"
for name, a, b, higher_better in rows:
    x, y = med(a), med(b) if b else None
    ratio = f"{x / y:.2f}" if x is not None and y else ""
    ahead = "" if not ratio else ("yes" if (x > y if higher_better else x < y) else "no")
    line = f"| {name} | {fmt(x)} | {fmt(y)} | {ratio} | {ahead} |"
    if has_base:
        z = med("base_" + a[4:]) if a.startswith("rma_") else None
        line += f" {fmt(z)} | {x / z:.2f} |" if x is not None and z else " | |"
    print(line)
PY
