#!/usr/bin/env bash
# Durable tasks per second through rma-broker on PostgreSQL at its default durability (fsync and
# synchronous_commit on), with 2 and 4 workers; medians of several runs, with the broker's and
# PostgreSQL's memory. Figures go to docs/benchmarks.md ("Durable tasks (PostgreSQL)").
#   bench/store_bench.sh [RUNS] [TASKS]      defaults: 5 runs of 100000 tasks per worker count
#   WINDOW=2000 BATCH=50 SLOTS=64 PAYLOAD=64 RATE=0 bench/store_bench.sh
# CREDITS="off enforce" runs each worker count once per credit mode (issue 16; default "off"): the
# tasks are submitted for an account ('bench', 10^12 credits) and, with credits on, each accepted
# result writes its ledger row in the group commit. The fake workers have no account, so a result
# writes one row (spent), not two.
# RATE=N offers N tasks/s on a schedule (open loop) to measure latency at that load; RATE=0 (the
# default) measures the most durable tasks/s the window allows.
# BASE_BIN=DIR also runs every mode with the rma-broker in DIR (a build of the previous commit:
# `git worktree add /tmp/base HEAD~1`, then build rma-broker there), interleaved with this build's,
# labelled MODE@base; the medians then compare each build's modes and the two builds.
# Builds Release in build/bench (BUILD_DIR to change; store_bench uses the test peers, so the tests
# are configured too), starts a private PostgreSQL (scripts/pg.sh), and for every run a fresh
# database and a fresh broker.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
runs=${1:-5}
tasks=${2:-100000}
window=${WINDOW:-2000}; batch=${BATCH:-50}; slots=${SLOTS:-64}; payload=${PAYLOAD:-64}
rate=${RATE:-0}  # tasks/s offered; 0: as fast as the window allows
credit_modes=${CREDITS:-off}
base_bin=${BASE_BIN:-}
if [[ -n $base_bin && ! -x $base_bin/rma-broker ]]; then
  echo "store_bench.sh: BASE_BIN=$base_bin has no rma-broker" >&2; exit 2
fi
build=${BUILD_DIR:-$root/build/bench}

# An existing build directory is used as it is configured (it should be Release).
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_TESTS=ON -DRMA_BUILD_BENCHMARKS=ON \
    -DRMA_BUILD_DASHBOARD=OFF >/dev/null
fi
cmake --build "$build" --target rma-broker store_bench -j "$(nproc)" >/dev/null

work=$(mktemp -d /tmp/rma-store-bench.XXXXXX)
broker_pid=""
cleanup() {
  [[ -n "$broker_pid" ]] && kill -TERM "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null || true
  bash scripts/pg.sh stop "$work/pg" || true
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
url=$(bash scripts/pg.sh start "$work/pg")
base=${url%/*}
q() { psql -X -q -t -A "$url" -c "$1"; }
echo "== machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== PostgreSQL $(q 'SHOW server_version'): fsync=$(q 'SHOW fsync') synchronous_commit=$(q 'SHOW synchronous_commit') wal_sync_method=$(q 'SHOW wal_sync_method') shared_buffers=$(q 'SHOW shared_buffers')"
echo "== parameters: runs=$runs tasks=$tasks window=$window batch=$batch slots=$slots payload=${payload}B rate=$rate credits=[$credit_modes]${base_bin:+ base broker=$base_bin/rma-broker}"
echo "== commit: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- broker schemas 2>/dev/null || echo ' (with uncommitted changes in broker/ or schemas/)')"
echo "== load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
# The floor under any durable acknowledgement on this disk: one client committing one-row transactions.
pgbench=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)/pgbench
q "CREATE TABLE fsync_probe (x int)"
echo "INSERT INTO fsync_probe VALUES (1);" >"$work/probe.sql"
floor=$("$pgbench" -n -c 1 -T 5 -f "$work/probe.sql" "$url" 2>/dev/null | sed -n 's/latency average = \(.*\)/\1/p')
echo "== one-row commit latency (pgbench, 1 client, 5 s): average $floor"
q "DROP TABLE fsync_probe"

# Proportional set size of every PostgreSQL process, summed (shared buffers counted once), in MiB.
pg_pss() {
  local total=0 pid pss
  for pid in $(pgrep -u postgres -f "postgres|postmaster" || true); do
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${pss:-0}))
  done
  echo $((total / 1024))
}

results="$work/results.tsv"
for workers in 2 4; do
  for run in $(seq "$runs"); do
   # The modes (and builds) alternate within a run, so a noisy moment of the machine hits all.
   variants=()
   for credits in $credit_modes; do
     variants+=("$credits:$build/bin:$credits")
     [[ -n $base_bin ]] && variants+=("$credits:$base_bin:$credits@base")
   done
   for variant in "${variants[@]}"; do
    IFS=: read -r credits broker_dir label <<<"$variant"
    db="bench_${workers}_${run}_${credits}${label#"$credits"}"
    db=${db//@/_}
    q "CREATE DATABASE $db"
    owner=()
    if [[ $credit_modes != off ]]; then
      # Make the schema (a broker's first start), then the account the tasks are charged to.
      "$broker_dir/rma-broker" --db "$base/$db" --workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
        --endpoints-file "$work/endpoints.init" >"$work/init.log" 2>&1 &
      init_pid=$!
      for _ in $(seq 300); do [[ -s "$work/endpoints.init" ]] && break; sleep 0.05; done
      kill -TERM "$init_pid"; wait "$init_pid" || true; rm -f "$work/endpoints.init"
      psql -X -q "$base/$db" -c "INSERT INTO accounts (name, role, credits) VALUES ('bench', 'member', 1e12)"
      psql -X -q "$base/$db" -c "INSERT INTO credit_ledger (account, kind, amount, note) VALUES ('bench', 'grant', 1e12, 'store_bench')"
      owner=(--owner bench)
    fi
    rm -f "$work/endpoints"
    "$broker_dir/rma-broker" --db "$base/$db" --workers 'tcp://127.0.0.1:*' --clients 'tcp://127.0.0.1:*' \
      --endpoints-file "$work/endpoints" --heartbeat-ms 5000 --credits "$credits" \
      >"$work/broker.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 300); do [[ -s "$work/endpoints" ]] && break; sleep 0.05; done
    out=$("$build/bin/store_bench" --clients "$(sed -n 2p "$work/endpoints")" \
      --workers-endpoint "$(sed -n 1p "$work/endpoints")" --db "$base/$db" --tasks "$tasks" \
      --workers "$workers" --slots "$slots" --window "$window" --batch "$batch" --payload "$payload" \
      --rate "$rate" "${owner[@]}")
    broker_hwm=$(awk '/^VmHWM:/ {print int($2/1024)}' "/proc/$broker_pid/status")
    pss=$(pg_pss)
    kill -TERM "$broker_pid"; wait "$broker_pid" || true; broker_pid=""
    # The broker's exit line (a newer broker's also gives the share of a commit the ledger took).
    commits=$(grep -o 'store: [0-9]* commit(s) of [0-9]* task row(s) for [0-9]* write(s), [0-9.]* ms per commit\(; [0-9]* failed, [0-9]* reconnect(s); [0-9]* credit ledger row(s), [0-9.]* ms per commit writing them\( ([0-9]* spent row(s) with their task.s row)\)\?\)\?' "$work/broker.log" || true)
    tps=$(sed -n 's/.*durable_tasks_per_s=\([0-9]*\).*/\1/p' <<<"$out")
    read -r a50 a99 c50 c99 < <(sed -n 's/ack_ms p50=\([0-9.]*\) p99=\([0-9.]*\)  completion_ms p50=\([0-9.]*\) p99=\([0-9.]*\).*/\1 \2 \3 \4/p' <<<"$out")
    if [[ -n ${owner[*]} ]]; then
      ledger_ok=$(psql -X -q -t -A "$base/$db" -c "SELECT count(*) = 0 FROM accounts a WHERE credits <> (SELECT coalesce(sum(amount), 0) FROM credit_ledger l WHERE l.account = a.name)")
      rows=$(psql -X -q -t -A "$base/$db" -c "SELECT count(*) FROM credit_ledger WHERE kind = 'spent'")
      commits="$commits; ledger rows $rows, balances = sums of rows: $ledger_ok"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$workers" "$tps" "$a50" "$a99" "$c50" "$c99" \
      "$broker_hwm" "$pss" "$commits" "$label" >>"$results"
    echo "workers=$workers run=$run credits=$label: $tps tasks/s, ack p50 ${a50} ms p99 ${a99} ms, completion p50 ${c50} ms p99 ${c99} ms, broker peak RSS ${broker_hwm} MiB, PostgreSQL PSS ${pss} MiB; $commits"
    q "DROP DATABASE $db"
   done
  done
done
python3 - "$results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print("\n== medians")
print("| workers | credits | durable tasks/s | ack p50 ms | ack p99 ms | completion p50 ms | completion p99 ms | broker peak RSS MiB | PostgreSQL PSS MiB |")
print("|---|---|---|---|---|---|---|---|---|")
modes = list(dict.fromkeys(r[9] for r in rows))
meds = {}
for w in sorted({r[0] for r in rows}):
    for c in modes:
        sel = [r for r in rows if r[0] == w and r[9] == c]
        med = lambda i: statistics.median(float(r[i]) for r in sel)
        meds[(w, c)] = (med(1), med(2))
        print(f"| {w} | {c} | {med(1):.0f} | {med(2):.2f} | {med(3):.2f} | {med(4):.2f} | {med(5):.2f} | {med(6):.0f} | {med(7):.0f} |")
# Labels are MODE or MODE@base. Each build's modes against its first mode (issue 16's targets),
# then each mode of this build against the base build's.
first = modes[0].split("@")[0]
for w in sorted({r[0] for r in rows}):
    for c in modes:
        mode, _, suffix = c.partition("@")
        ref = first + ("@" + suffix if suffix else "")
        if mode == first or (w, ref) not in meds:
            continue
        t, a = meds[(w, c)]
        t0, a0 = meds[(w, ref)]
        print(f"workers={w}: credits {c} / {ref}: throughput {t / t0:.2f}x (target >= 0.80), ack p50 {a / a0:.2f}x (target <= 1.5)")
    for c in modes:
        if "@" in c or (w, c + "@base") not in meds:
            continue
        t, a = meds[(w, c)]
        t0, a0 = meds[(w, c + "@base")]
        print(f"workers={w}: credits {c}, this build / base: throughput {t / t0:.2f}x, ack p50 {a / a0:.2f}x")
PY
