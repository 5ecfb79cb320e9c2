#!/usr/bin/env bash
# A private, throw-away RabbitMQ node for benchmarks (bench/rabbit_bench.sh). Everything (Mnesia
# and message store, logs, configuration, Erlang cookie, pid files) lives in DIR; the AMQP listener
# is on 127.0.0.1 only, on a free port picked here; the node registers with an epmd of its own on
# another free port, so a system RabbitMQ or epmd is never touched.
#   url=$(bench/rabbitmq.sh start DIR)  # prints amqp://guest:guest@127.0.0.1:PORT once it is up
#   bench/rabbitmq.sh stop DIR          # stops the node and its epmd: nothing of it keeps running
# DIR is created if missing and left in place (the caller removes it); DIR/env holds the node's
# environment, for stop. Uses Debian's rabbitmq-server (scripts/install-deps.sh --bench) through
# /usr/lib/rabbitmq/bin directly: the /usr/sbin wrapper would `su rabbitmq` and cd to
# /var/lib/rabbitmq, so the node runs as the calling user (root is fine). Durability is RabbitMQ's
# default (persistent messages in durable queues are fsynced before their publisher confirm); the
# memory high watermark is the default 0.4 of RAM. Takes about 10 s to start on 2 cores.
# RABBITMQ_BIN: another installation's scripts; START_TIMEOUT: seconds to wait (default 120).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]] || [[ "$cmd" != start && "$cmd" != stop ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
bin=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
log() { echo "rabbitmq.sh: $*" >&2; }
alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

if [[ "$cmd" == start ]]; then
  for tool in rabbitmq-server rabbitmqctl; do
    if [[ ! -x "$bin/$tool" ]]; then
      log "$bin/$tool not found (install rabbitmq-server: scripts/install-deps.sh --bench)"
      exit 1
    fi
  done
  command -v epmd >/dev/null || { log "epmd not found (Erlang is not installed)"; exit 1; }
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ -e "$dir/env" ]]; then
    log "$dir/env exists: a node was already started there (stop it first)"
    exit 1
  fi
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  # Four distinct free ports, held together while picked: AMQP, node distribution, epmd, CLI tools.
  read -r amqp_port dist_port epmd_port ctl_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
  node="rma-bench-$$@localhost"
  # Keep the Erlang VMs from starting an epmd of their own: ours is started below, on its own port.
  erl_args="-start_epmd false -kernel inet_dist_use_interface {127,0,0,1}"
  cat >"$dir/env" <<EOF
export RABBITMQ_NODENAME=$node
export RABBITMQ_USE_LONGNAME=false
export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export RABBITMQ_MNESIA_BASE=$dir/mnesia
export RABBITMQ_LOG_BASE=$dir/log
export RABBITMQ_PID_FILE=$dir/beam.pid
export RABBITMQ_DIST_PORT=$dist_port
export RABBITMQ_CTL_DIST_PORT_MIN=$ctl_port
export RABBITMQ_CTL_DIST_PORT_MAX=$ctl_port
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='$erl_args'
export RABBITMQ_CTL_ERL_ARGS='$erl_args'
export ERL_EPMD_PORT=$epmd_port
export ERL_EPMD_ADDRESS=127.0.0.1
export HOME=$dir/home
AMQP_PORT=$amqp_port
EOF
  : >"$dir/rabbitmq-env.conf"  # instead of /etc/rabbitmq/rabbitmq-env.conf
  echo "[]." >"$dir/enabled_plugins"
  cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$amqp_port
loopback_users.guest = true
log.console = false
log.file.level = info
EOF
  # The cookie the node and rabbitmqctl share (both read \$HOME/.erlang.cookie).
  python3 -c 'import secrets; print(secrets.token_hex(20).upper(), end="")' >"$dir/home/.erlang.cookie"
  chmod 400 "$dir/home/.erlang.cookie"
  # shellcheck disable=SC1091
  source "$dir/env"
  cd "$dir"
  fail() {
    log "$1; last lines of $dir/log/server.out and the node's log:"
    tail -n 20 "$dir/log/server.out" >&2 || true
    tail -n 20 "$dir/log/$node.log" "$dir/log/${node%@*}.log" 2>/dev/null >&2 || true
    bash "$self" stop "$dir" || true
    exit 1
  }
  # Each in a session of its own (no job control here, so setsid does not fork and $! is the
  # session leader): stop kills the node's session by id, taking the beam and its port programs.
  setsid epmd -port "$epmd_port" -address 127.0.0.1 </dev/null >"$dir/log/epmd.log" 2>&1 &
  echo $! >"$dir/epmd.pid"
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$epmd_port") 2>/dev/null && break; sleep 0.1; done
  setsid "$bin/rabbitmq-server" </dev/null >"$dir/log/server.out" 2>&1 &
  server_pid=$!
  echo "$server_pid" >"$dir/server.pid"
  if [[ "$(ps -o sid= -p "$server_pid" | tr -d ' ')" != "$server_pid" ]]; then
    sleep 0.2  # setsid may not have run yet
    [[ "$(ps -o sid= -p "$server_pid" | tr -d ' ')" == "$server_pid" ]] || fail "rabbitmq-server did not get a session of its own"
  fi
  started=$(date +%s)
  timeout=${START_TIMEOUT:-120}
  # The listener opens late in the boot; then await_startup confirms the node finished booting.
  until (exec 3<>"/dev/tcp/127.0.0.1/$amqp_port") 2>/dev/null; do
    alive "$server_pid" || fail "rabbitmq-server exited during startup"
    (($(date +%s) - started < timeout)) || fail "no AMQP listener on 127.0.0.1:$amqp_port after ${timeout}s"
    sleep 0.2
  done
  "$bin/rabbitmqctl" -q await_startup --timeout "$timeout" >&2 || fail "rabbitmqctl await_startup failed"
  beam=$(cat "$dir/beam.pid" 2>/dev/null || echo "?")
  log "node $node up in $(($(date +%s) - started)) s (pid $beam, AMQP 127.0.0.1:$amqp_port, epmd $epmd_port)"
  echo "amqp://guest:guest@127.0.0.1:$amqp_port"
  exit 0
fi

# stop
[[ -f "$dir/env" ]] || { log "no $dir/env: nothing to stop"; exit 0; }
dir=$(cd "$dir" && pwd)
# shellcheck disable=SC1091
source "$dir/env"
server_pid=$(cat "$dir/server.pid" 2>/dev/null || true)
epmd_pid=$(cat "$dir/epmd.pid" 2>/dev/null || true)
beam_pid=$(cat "$dir/beam.pid" 2>/dev/null || true)
# Pids from files count only while they are still this node's (not reused by another process).
mine() { alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; }
mine "$beam_pid" "$dir/home" || beam_pid=""
mine "$epmd_pid" "epmd -port $ERL_EPMD_PORT" || epmd_pid=""
# Only processes of this node's session (sid = the server wrapper's pid, set by setsid at start).
session() { if [[ -n "$server_pid" ]]; then pgrep -s "$server_pid" 2>/dev/null || true; fi; }
if alive "$server_pid" && [[ -n "$(session)" ]]; then
  # shutdown stops the node and waits for its OS process to exit.
  timeout 60 "$bin/rabbitmqctl" -q shutdown >/dev/null 2>&1 || log "rabbitmqctl shutdown failed; killing the node"
fi
for sig in TERM TERM TERM TERM TERM KILL; do
  pids=$(session)
  alive "$beam_pid" && pids+=" $beam_pid"
  [[ -z "${pids// /}" ]] && break
  # shellcheck disable=SC2086
  kill -"$sig" $pids 2>/dev/null || true
  sleep 1
done
if alive "$epmd_pid"; then
  kill -TERM "$epmd_pid" 2>/dev/null || true
  for _ in $(seq 20); do alive "$epmd_pid" || break; sleep 0.1; done
  if alive "$epmd_pid"; then kill -KILL "$epmd_pid" 2>/dev/null || true; fi
fi
left=$(session)
alive "$beam_pid" && left+=" $beam_pid"
alive "$epmd_pid" && left+=" $epmd_pid"
if [[ -n "${left// /}" ]]; then
  log "processes still running after stop: $left"
  exit 1
fi
rm -f "$dir/env"
exit 0
