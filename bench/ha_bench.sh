#!/usr/bin/env bash
# Broker high availability (issue 18; figures in docs/benchmarks.md, "High availability"), on a private
# PostgreSQL (fsync on), measured in one run:
#   takeover   BROKERS rma-broker --ha (lease LEASE s) on one database, WORKERS rma-worker and one
#              rma-gateway given every endpoint. RUNS times: kill -9 of the leader, then a synchronous
#              call (POST /api/service/echo/, 1 s timeout) every 50 ms until one succeeds: the time from
#              the kill to that first task completed through the new leader. The killed broker comes back
#              as a standby before the next run. Prints each time, the p50 and the max.
#   throughput durable throughput (bench/pool_bench.cc --mode throughput --durable: SUBMIT async,
#              ACCEPTED after the commit, every task ended) of one broker with --db alone ("off") and of
#              a leader with --ha and one standby on the same kind of fresh database ("on"), alternated
#              TPUT_ROUNDS times; the median of each and on/off.
# Prints the parameters, nproc and the load average.
#   bench/ha_bench.sh [RUNS]     default 5
#   LEASE=5 BROKERS=3 WORKERS=2 SLOTS=8 TASKS=20000 TPUT_ROUNDS=3 BUILD_DIR (default build/bench, Release)
#   SKIP_TAKEOVER=1 / SKIP_TPUT=1 to measure one part only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source bench/lib.sh
runs=${1:-5}
LEASE=${LEASE:-5}; BROKERS=${BROKERS:-3}; WORKERS=${WORKERS:-2}; SLOTS=${SLOTS:-8}
TASKS=${TASKS:-20000}; TPUT_ROUNDS=${TPUT_ROUNDS:-3}
build=${BUILD_DIR:-$root/build/bench}
bin=$build/bin
for tool in psql curl; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/install-deps.sh --bench" >&2; exit 1; }
done
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_TESTS=ON -DRMA_BUILD_BENCHMARKS=ON \
    -DRMA_BUILD_DASHBOARD=OFF >/dev/null
fi
cmake --build "$build" --target rma-broker rma-worker rma-gateway pool_bench -j "$(nproc)" >/dev/null

work=$(mktemp -d /tmp/rma-ha-bench.XXXXXX)
chmod 755 "$work"
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  local rc=$?
  stop_all
  bash scripts/pg.sh stop "$work/pg" >/dev/null 2>&1 || true
  # The logs stay for a failed run.
  if [[ $rc -eq 0 ]]; then rm -rf "$work"; else echo "logs kept in $work" >&2; fi
}
trap cleanup EXIT
wait_file() { for _ in $(seq 400); do [[ -s $1 ]] && return 0; sleep 0.05; done; echo "no $1" >&2; return 1; }
now() { date +%s.%N; }

url=$(bash scripts/pg.sh start "$work/pg")
base=${url%/*}
newdb() { psql -X -q "$url" -c "CREATE DATABASE $1" >/dev/null; echo "$base/$1"; }

echo "== ha_bench: runs=$runs lease=${LEASE}s brokers=$BROKERS workers=$WORKERS slots=$SLOTS tasks=$TASKS" \
  "tput_rounds=$TPUT_ROUNDS nproc=$(nproc) load=$(cut -d' ' -f1-3 /proc/loadavg)"

# start_broker NAME DB [WORKERS_EP CLIENTS_EP] [more flags]: a broker with --ha on DB; sets its pid in
# BROKER_PID and its endpoints in $work/NAME.endpoints.
start_broker() {
  local name=$1 db=$2 w=${3:-'tcp://127.0.0.1:*'} c=${4:-'tcp://127.0.0.1:*'}
  shift 4 || shift $#
  rm -f "$work/$name.endpoints"
  "$bin/rma-broker" --db "$db" --workers "$w" --clients "$c" --endpoints-file "$work/$name.endpoints" \
    --log-level info "$@" >>"$work/$name.log" 2>&1 &
  BROKER_PID=$!
  pids+=("$BROKER_PID")
  wait_file "$work/$name.endpoints"
}
ep() { sed -n "$2p" "$work/$1.endpoints"; }
join() { local IFS=,; echo "$*"; }

# ---- takeover -----------------------------------------------------------------------------------
if [[ ${SKIP_TAKEOVER:-0} != 1 ]]; then
db=$(newdb rma_takeover)
declare -a bpid
for i in $(seq "$BROKERS"); do
  start_broker "b$i" "$db" 'tcp://127.0.0.1:*' 'tcp://127.0.0.1:*' --ha --ha-lease-s "$LEASE"
  bpid[$i]=$BROKER_PID
done
wlist=(); clist=()
for i in $(seq "$BROKERS"); do wlist+=("$(ep "b$i" 1)"); clist+=("$(ep "b$i" 2)"); done
for i in $(seq "$WORKERS"); do
  "$bin/rma-worker" --broker "$(join "${wlist[@]}")" --worker-id "ha-$i" --data-dir "$work/w$i" \
    --service echo=builtin:echo --slots "$SLOTS" --log-level info >"$work/w$i.log" 2>&1 &
  pids+=($!)
done
"$bin/rma-gateway" --broker "$(join "${clist[@]}")" --listen 127.0.0.1:0 --port-file "$work/gw.port" \
  >"$work/gw.log" 2>&1 &
pids+=($!)
wait_file "$work/gw.port"
gw="http://127.0.0.1:$(cat "$work/gw.port")"
call() {
  curl -s -o /dev/null -w '%{http_code}' --max-time 1 -X POST -H 'Content-Type: application/json' \
    "$gw/api/service/echo/" -d '{"ping":1}' || true
}
serving() { for _ in $(seq 600); do [[ $(call) == 200 ]] && return 0; sleep 0.05; done; return 1; }
serving || { echo "the pool never served (see $work)" >&2; exit 1; }
leader_pid() {
  psql -X -q -t -A "$db" -c "SELECT holder FROM broker_lease WHERE expires_at > clock_timestamp()" |
    cut -d: -f2
}
times=()
for run in $(seq "$runs"); do
  serving
  # A steady state: every broker up, the lease renewed at least once since the last takeover.
  sleep 2
  pid=$(leader_pid)
  idx=""
  for i in $(seq "$BROKERS"); do [[ ${bpid[$i]} == "$pid" ]] && idx=$i; done
  [[ -n $idx ]] || { echo "no leader among the brokers (holder pid '$pid')" >&2; exit 1; }
  t0=$(now)
  kill -9 "$pid"
  wait "$pid" 2>/dev/null || true
  serving || { echo "no takeover after run $run (see $work)" >&2; exit 1; }
  t=$(echo "$(now) - $t0" | bc -l)
  times+=("$t")
  printf 'run %d: killed broker %d (pid %s); first task completed through the new leader after %.2f s\n' \
    "$run" "$idx" "$pid" "$t"
  start_broker "b$idx" "$db" "${wlist[$((idx - 1))]}" "${clist[$((idx - 1))]}" --ha --ha-lease-s "$LEASE"
  bpid[$idx]=$BROKER_PID
done
p50=$(echo "${times[@]}" | median)
max=$(echo "${times[@]}" | tr ' ' '\n' | sort -g | tail -n1)
printf 'takeover (kill -9 -> first task completed by the new leader), %d runs, lease %s s: p50 %.2f s, max %.2f s\n' \
  "$runs" "$LEASE" "$p50" "$max"
stop_all
fi

# ---- durable throughput, --ha off and on ---------------------------------------------------------
tput() {  # tput NAME DB [broker flags]: starts a pool, prints tasks/s of one durable throughput run
  local name=$1 db=$2 i out
  shift 2
  start_broker "$name" "$db" 'tcp://127.0.0.1:*' 'tcp://127.0.0.1:*' "$@" >/dev/null
  local clients
  clients=$(ep "$name" 2)
  if [[ " $* " == *" --ha "* ]]; then  # leading, and a standby beside it, as in production
    local me=$BROKER_PID
    for _ in $(seq 400); do
      [[ $(psql -X -q -t -A "$db" -c "SELECT holder FROM broker_lease WHERE expires_at > clock_timestamp()" \
        2>/dev/null | cut -d: -f2) == "$me" ]] && break
      sleep 0.05
    done
    start_broker "$name-standby" "$db" 'tcp://127.0.0.1:*' 'tcp://127.0.0.1:*' "$@" >/dev/null
  fi
  for i in $(seq "$WORKERS"); do
    "$bin/rma-worker" --broker "$(ep "$name" 1)" --worker-id "$name-$i" --data-dir "$work/$name.w$i" \
      --service echo=builtin:echo --slots 100 --log-level warn >"$work/$name.w$i.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 400); do
    [[ $("$bin/pool_bench" --clients "$clients" --count-workers 2>/dev/null || echo 0) -ge $WORKERS ]] && break
    sleep 0.05
  done
  out=$("$bin/pool_bench" --clients "$clients" --mode throughput --durable --tasks "$TASKS")
  stop_all
  sed -n 's/.*tasks_per_s=\([0-9]*\).*/\1/p' <<<"$out"
}
[[ ${SKIP_TPUT:-0} == 1 ]] && exit 0
off=(); on=()
for r in $(seq "$TPUT_ROUNDS"); do
  off+=("$(tput "off$r" "$(newdb "rma_off$r")")")
  on+=("$(tput "on$r" "$(newdb "rma_on$r")" --ha --ha-lease-s "$LEASE")")
  echo "round $r: durable throughput --ha off ${off[-1]} tasks/s, on ${on[-1]} tasks/s"
done
moff=$(echo "${off[@]}" | median); mon=$(echo "${on[@]}" | median)
printf 'durable throughput, median of %d: --ha off %s tasks/s, --ha on %s tasks/s (on/off %.2f)\n' \
  "$TPUT_ROUNDS" "$moff" "$mon" "$(echo "$mon / $moff" | bc -l)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
