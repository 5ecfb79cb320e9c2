#!/usr/bin/env bash
# Runs a whole rma pool on this machine: installs what is missing, builds, starts a private PostgreSQL, the
# broker, the gateway and two workers (one on this machine's real hardware, one simulated GPU desktop),
# submits a few sample tasks, prints their results and the URLs, and stops everything on Ctrl-C.
#   scripts/demo.sh            HTTP on 127.0.0.1:8080 (or a free port if 8080 is taken)
#   RMA_DEMO_PORT=9000 scripts/demo.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh
build=${BUILD_DIR:-$root/build/demo}
echo "== building rma (Release) in $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_TESTS=OFF -DRMA_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$build" -j "$(nproc)"
bin=$build/bin

run=$(mktemp -d /tmp/rma-demo.XXXXXX)
pgdir=$(mktemp -d /tmp/rma-demo-pg.XXXXXX)  # its own directory: the postgres user must be able to enter it
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "== stopping the pool"
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  bash scripts/pg.sh stop "$pgdir" || true
  rm -rf "$run" "$pgdir"
  echo "stopped"
}
trap stop INT TERM EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=${RMA_DEMO_PORT:-8080}
if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', $port))" 2>/dev/null; then
  echo "port $port is taken; using another"
  port=$(free_port)
fi
wait_file() { for _ in $(seq 200); do [[ -s "$1" ]] && return 0; sleep 0.1; done; echo "timed out waiting for $1" >&2; return 1; }

echo "== PostgreSQL"
db_url=$(bash scripts/pg.sh start "$pgdir")
db_args=(--db "$db_url")  # tasks, workers and statistics are recorded there and survive a broker restart

echo "== broker"
"$bin/rma-broker" --workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' --endpoints-file "$run/endpoints" \
  --allow-simulated --heartbeat-ms 2000 "${db_args[@]}" >"$run/broker.log" 2>&1 &
pids+=($!)
wait_file "$run/endpoints"
workers_ep=$(sed -n 1p "$run/endpoints"); clients_ep=$(sed -n 2p "$run/endpoints")

echo "== gateway on 127.0.0.1:$port"
"$bin/rma-gateway" --broker "$clients_ep" --listen "127.0.0.1:$port" --port-file "$run/port" >"$run/gateway.log" 2>&1 &
pids+=($!)
wait_file "$run/port"

echo "== workers"
"$bin/rma-worker" --broker "$workers_ep" --name this-machine --data-dir "$run/worker-1" --slots 4 \
  --service echo=builtin:echo --service sleep=builtin:sleep >"$run/worker-1.log" 2>&1 &
pids+=($!)
"$bin/rma-worker" --broker "$workers_ep" --name gpu-desktop-sim --data-dir "$run/worker-2" --simulate gpu --slots 2 \
  --service rag=builtin:echo --service echo=builtin:echo >"$run/worker-2.log" 2>&1 &
pids+=($!)

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

cat <<TXT

rma pool is running:
  dashboard   $api/
  HTTP API    $api/api/tasks   (see docs/http-api.md)
  admin       $api/api/admin/workers   $api/api/admin/stats
  metrics     $api/metrics
  broker      workers $workers_ep, clients $clients_ep
  PostgreSQL  $db_url
  logs        $run/*.log
Try:  $bin/rmactl --gateway $api submit echo '{"hi":1}' --wait
Press Ctrl-C to stop.
TXT
wait
