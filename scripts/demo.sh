#!/usr/bin/env bash
# Runs a whole rma pool on this machine: installs what is missing, builds, starts a private PostgreSQL, the
# broker, the gateway and two workers (one on this machine's real hardware, one simulated GPU desktop),
# submits a few sample tasks, prints their results and the URLs, and stops everything on Ctrl-C.
#   scripts/demo.sh                       HTTP on 127.0.0.1:8080 (or a free port if 8080 is taken)
#   RMA_DEMO_PORT=9000 scripts/demo.sh
#   RMA_DEMO_BIN=build/test/bin scripts/demo.sh   use programs already built there: no install, no build
#
# Stopping (Ctrl-C, SIGINT or SIGTERM to the script or to its whole process group): the pool's processes
# run in sessions of their own, so a signal meant for the script never reaches them all at once; the
# script stops them in order — workers (they drain and deliver their results while the broker is still
# there), then the gateway, then the broker, then PostgreSQL — each with a deadline (a process that
# overstays gets a second signal, then SIGKILL), so everything is gone within 10 seconds. A second
# Ctrl-C while stopping skips the waiting. The temporary directories are removed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [[ -n "${RMA_DEMO_BIN:-}" ]]; then
  bin=$(cd "$RMA_DEMO_BIN" && pwd)
  for p in rma-broker rma-gateway rma-worker rmactl; do
    [[ -x "$bin/$p" ]] || { echo "RMA_DEMO_BIN=$RMA_DEMO_BIN has no $p" >&2; exit 2; }
  done
else
  bash scripts/install-deps.sh
  build=${BUILD_DIR:-$root/build/demo}
  echo "== building rma (Release) in $build"
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_TESTS=OFF -DRMA_BUILD_BENCHMARKS=OFF >/dev/null
  cmake --build "$build" -j "$(nproc)"
  bin=$build/bin
fi

run=$(mktemp -d /tmp/rma-demo.XXXXXX)
pgdir=$(mktemp -d /tmp/rma-demo-pg.XXXXXX)  # its own directory: the postgres user must be able to enter it
workers=(); gateway=""; broker=""
stopped=0; hurry=0

# stop_pids SECONDS PID...: SIGTERM, up to SECONDS for them to exit; then a second SIGTERM (a draining
# worker leaves at once on the second signal) and one more second; then SIGKILL. Reaps them.
stop_pids() {
  local grace=$1; shift
  local pids=("$@") deadline pid alive
  [[ ${#pids[@]} -gt 0 ]] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for step in first second; do
    deadline=$((SECONDS + grace))
    while :; do
      alive=()
      for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
      [[ ${#alive[@]} -eq 0 ]] && break 2
      [[ $SECONDS -ge $deadline || $hurry -eq 1 ]] && break
      sleep 0.1
    done
    [[ $step == first ]] && kill -TERM "${alive[@]}" 2>/dev/null || true
    grace=1
  done
  [[ ${#alive[@]} -gt 0 ]] && kill -KILL "${alive[@]}" 2>/dev/null || true
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}

stop() {
  [[ $stopped -eq 1 ]] && return 0
  stopped=1
  # A second Ctrl-C (or any of these signals) while stopping: stop waiting, kill what is left.
  trap 'hurry=1; echo " (stopping now)"' INT TERM HUP
  echo; echo "== stopping the pool"
  stop_pids 4 "${workers[@]}"
  stop_pids 2 ${gateway:+"$gateway"}
  stop_pids 3 ${broker:+"$broker"}
  bash scripts/pg.sh stop "$pgdir" || true
  rm -rf "$run" "$pgdir"
  echo "stopped"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT

# start LOG PROGRAM ARGS...: runs PROGRAM in a session of its own (see above), output to LOG; its pid
# is left in $started.
start() {
  local log=$1; shift
  setsid "$@" >"$log" 2>&1 &
  started=$!
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=${RMA_DEMO_PORT:-8080}
if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $port))" 2>/dev/null; then
  echo "port $port is taken; using another"
  port=$(free_port)
fi
wait_file() { for _ in $(seq 200); do [[ -s "$1" ]] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; return 1; }

echo "== PostgreSQL in $pgdir"
# Its own session too: the server must outlive a Ctrl-C until the broker has written its last records.
db_url=$(setsid bash scripts/pg.sh start "$pgdir")
db_args=(--db "$db_url")  # tasks, workers and statistics are recorded there and survive a broker restart

echo "== broker"
start "$run/broker.log" "$bin/rma-broker" --workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
  --endpoints-file "$run/endpoints" --allow-simulated --heartbeat-ms 2000 "${db_args[@]}"
broker=$started
wait_file "$run/endpoints"
workers_ep=$(sed -n 1p "$run/endpoints"); clients_ep=$(sed -n 2p "$run/endpoints")

echo "== gateway on 127.0.0.1:$port"
start "$run/gateway.log" "$bin/rma-gateway" --broker "$clients_ep" --listen "127.0.0.1:$port" --port-file "$run/port"
gateway=$started
wait_file "$run/port"

echo "== workers"
# A short drain grace: a demo worker's tasks are small, and stopping must not take long.
start "$run/worker-1.log" "$bin/rma-worker" --broker "$workers_ep" --name this-machine --data-dir "$run/worker-1" \
  --slots 4 --drain-grace-ms 2000 --service echo=builtin:echo --service sleep=builtin:sleep
workers+=("$started")
start "$run/worker-2.log" "$bin/rma-worker" --broker "$workers_ep" --name gpu-desktop-sim --data-dir "$run/worker-2" \
  --simulate gpu --slots 2 --drain-grace-ms 2000 --service rag=builtin:echo --service echo=builtin:echo
workers+=("$started")

api="http://127.0.0.1:$port"
for _ in $(seq 100); do
  n=$(curl -s "$api/api/admin/workers" | python3 -c 'import json,sys; print(sum(1 for w in json.load(sys.stdin)["workers"] if w["status"] != "offline"))' 2>/dev/null || echo 0)
  [[ "$n" == "2" ]] && break; sleep 0.1
done

echo "== sample tasks"
for i in 1 2 3; do
  id=$(curl -s -X POST "$api/api/tasks" -H 'Content-Type: application/json' \
        -d "{\"service\":\"echo\",\"payload\":{\"hello\":\"pool\",\"n\":$i}}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])')
  echo "task $id: $(curl -s "$api/api/tasks/$id?wait=10" | python3 -c 'import json,sys; t=json.load(sys.stdin); print(t["status"], "on", t["worker_id"], "->", json.dumps(t["result"]))')"
done
echo "synchronous rag call: $(curl -s -X POST "$api/api/rag/query" -H 'Content-Type: application/json' -d '{"q":"what is rma?"}')"
echo "rag goes to the GPU tier: $(curl -s -D - -o /dev/null -X POST "$api/api/rag/query" -d '{}' | grep -i x-rma-worker-id | tr -d '\r')"
echo "a service nobody runs: $(curl -s "$api/api/service/ocr/page")"

# A gateway built without the dashboard (no node/npm at build time) answers / with 404
# dashboard_not_built: say so instead of printing an address that shows an error.
if [[ $(curl -s -o "$run/root.json" -w '%{http_code}' "$api/") == 200 ]]; then
  dashboard="$api/"
else
  dashboard="not built into this gateway ($(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("error", "?"))' "$run/root.json" 2>/dev/null || echo "GET / did not answer 200"))"
fi

cat <<TXT

rma pool is running:
  dashboard   $dashboard
  HTTP API    $api/api/tasks   (see docs/http-api.md)
  admin       $api/api/admin/workers   $api/api/admin/stats
  metrics     $api/metrics
  broker      workers $workers_ep, clients $clients_ep
  PostgreSQL  $db_url   (data in $pgdir)
  logs        $run/*.log
Try:  $bin/rmactl --gateway $api submit echo '{"hi":1}' --wait
Press Ctrl-C to stop.
TXT
# Returns when a signal arrives (the traps above stop the pool) or, should they all exit, at once.
wait
