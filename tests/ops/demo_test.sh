#!/usr/bin/env bash
# scripts/demo.sh end to end, with programs already built (RMA_DEMO_BIN, so no install and no build):
#   tests/ops/demo_test.sh SOURCE_DIR BIN_DIR
# Runs the demo twice. Each time: waits for "Press Ctrl-C", checks that every address it printed
# answers (the dashboard only when it says it is built), then interrupts it —
#   1. SIGINT to the demo's whole process group, as a terminal's Ctrl-C does;
#   2. SIGINT to the script alone, and a second SIGINT while it is stopping —
# and checks it exits within 10 s, leaves no process of its own running (broker, gateway, workers,
# PostgreSQL — found by the temporary directories on their command lines) and removes those directories.
set -euo pipefail
src=$(cd "$1" && pwd); bin=$(cd "$2" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

tmp=$(mktemp -d /tmp/rma-demo-test.XXXXXX)
demo=""
dirs=()
# Whatever happens, nothing of a demo stays behind: the demo itself, then anything that still names one
# of its directories.
cleanup() {
  if [[ -n "$demo" ]] && kill -0 "$demo" 2>/dev/null; then kill -KILL -- "-$demo" 2>/dev/null || true; fi
  for d in "${dirs[@]}"; do
    pkill -KILL -f -- "$d" 2>/dev/null || true
    [[ -f "$d/data/PG_VERSION" ]] && bash "$src/scripts/pg.sh" stop "$d" || true
    rm -rf "$d"
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run_demo CASE: starts the demo in a session (and so a process group) of its own; sets $demo, $log.
run_demo() {
  log=$tmp/demo-$1.log
  # A background command of a script starts with SIGINT ignored, and bash cannot trap a signal ignored
  # on entry; a demo started from a terminal has it at its default. So: default SIGINT, own session.
  RMA_DEMO_BIN=$bin RMA_DEMO_PORT=$(free_port) python3 -c '
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.setsid()
os.execvp(sys.argv[1], sys.argv[1:])' bash "$src/scripts/demo.sh" >"$log" 2>&1 </dev/null &
  demo=$!
  for _ in $(seq 600); do
    grep -q "Press Ctrl-C to stop." "$log" && break
    kill -0 "$demo" 2>/dev/null || { cat "$log"; fail "the demo ended before it was ready"; }
    sleep 0.1
  done
  grep -q "Press Ctrl-C to stop." "$log" || { cat "$log"; fail "the demo was not ready within 60 s"; }
  run=$(sed -n 's#^  logs *\(/tmp/rma-demo\.[A-Za-z0-9]*\)/\*\.log$#\1#p' "$log")
  pgdir=$(sed -n 's#^  PostgreSQL .*(data in \(/tmp/rma-demo-pg\.[A-Za-z0-9]*\))$#\1#p' "$log")
  [[ -d "$run" && -d "$pgdir" ]] || { cat "$log"; fail "the demo did not print its directories"; }
  dirs+=("$run" "$pgdir")
  [[ -n "$(pgrep -f -- "$run")" && -n "$(pgrep -f -- "$pgdir")" ]] || fail "no processes found for $run and $pgdir"
}

check_addresses() {
  local api dashboard
  api=$(sed -n 's#^  HTTP API *\(http://127\.0\.0\.1:[0-9]*\)/api/tasks .*#\1#p' "$log")
  [[ -n "$api" ]] || fail "no HTTP API address printed"
  for path in /api/tasks /api/admin/workers /api/admin/stats /metrics /health; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$api$path")
    [[ "$code" == 200 ]] || fail "$api$path answered $code"
  done
  grep -q "^  metrics *$api/metrics$" "$log" || fail "metrics address not printed"
  dashboard=$(sed -n 's#^  dashboard *##p' "$log")
  if [[ "$dashboard" == http* ]]; then
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$dashboard") == 200 ]] || fail "dashboard $dashboard does not answer"
    ok "dashboard $dashboard answers"
  else
    # A gateway without the bundle: the demo must say so, not print an address that shows an error.
    [[ "$dashboard" == "not built"* && $(curl -s -o /dev/null -w '%{http_code}' "$api/") == 404 ]] ||
      fail "dashboard line '$dashboard' while / answers $(curl -s -o /dev/null -w '%{http_code}' "$api/")"
    ok "the demo says the dashboard is not built"
  fi
  grep -q '^task [0-9]*: completed on ' "$log" || fail "no sample task completed"
  ok "every printed address answers at $api"
}

# expect_stopped STARTED: the demo exits within 10 s of STARTED (epoch ms) and leaves nothing behind.
expect_stopped() {
  local started=$1 code=""
  while (( $(date +%s%3N) - started < 10000 )); do
    if ! kill -0 "$demo" 2>/dev/null; then break; fi
    sleep 0.05
  done
  kill -0 "$demo" 2>/dev/null && { cat "$log"; fail "the demo still runs 10 s after SIGINT"; }
  wait "$demo" && code=0 || code=$?
  local took=$(( $(date +%s%3N) - started ))
  [[ $code == 130 || $code == 0 ]] || { cat "$log"; fail "the demo exited with $code"; }
  grep -q '^stopped$' "$log" || { cat "$log"; fail "the demo did not say it stopped"; }
  local left
  left=$(pgrep -a -f -- "$run|$pgdir" || true)
  [[ -z "$left" ]] || fail "left running: $left"
  [[ ! -e "$run" && ! -e "$pgdir" ]] || fail "left behind: $(ls -d "$run" "$pgdir" 2>/dev/null)"
  demo=""
  ok "stopped in ${took} ms (exit $code): no process left, directories removed"
}

# 1. Ctrl-C in a terminal: SIGINT to every process of the foreground process group at once.
run_demo group
check_addresses
started=$(date +%s%3N)
kill -INT -- "-$demo"
expect_stopped "$started"

# 2. SIGINT to the script alone, then again while it is stopping.
run_demo script
check_addresses
started=$(date +%s%3N)
kill -INT "$demo"
for _ in $(seq 50); do grep -q "== stopping the pool" "$log" && break; sleep 0.02; done
kill -INT "$demo" 2>/dev/null || true
expect_stopped "$started"
