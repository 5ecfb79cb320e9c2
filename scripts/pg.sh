#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for tests, benchmarks and the demo (TOOLCHAIN.md).
#   scripts/pg.sh start DIR   initialise DIR (if new), start on a free 127.0.0.1 port, print the URL
#                             (started again, DIR keeps its port when it is free: the URL stays valid)
#   scripts/pg.sh stop DIR    stop it (fast shutdown)
#   scripts/pg.sh url DIR     print the URL of a running cluster
# PostgreSQL refuses to run as root, so as root the server runs as the postgres user.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[[ -n "$cmd" && -n "$dir" ]] || { echo "usage: $0 start|stop|url DIR" >&2; exit 2; }
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
[[ -x "$bin/pg_ctl" ]] || { echo "pg.sh: PostgreSQL server not installed (run scripts/install-deps.sh)" >&2; exit 1; }

as_owner() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [[ $(id -u) -eq 0 ]]; then
      chown postgres:postgres "$dir"; chmod 0700 "$dir"
      if ! runuser -u postgres -- test -w "$dir"; then
        echo "pg.sh: the postgres user cannot reach $dir (is a parent directory private?)" >&2
        exit 1
      fi
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      as_owner "$bin/initdb" -D "$dir/data" -U rma --auth=trust -E UTF8 --locale=C.UTF-8 \
        --no-instructions --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    previous=""
    [[ -f "$dir/url" ]] && previous=$(sed -E 's#.*:([0-9]+)/.*#\1#' "$dir/url")
    for attempt in 1 2 3 4 5; do
      if [[ $attempt -eq 1 && -n "$previous" ]]; then port=$previous; else port=$(free_port); fi
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
          -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=200" start >/dev/null 2>&1; then
        as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U rma rma 2>/dev/null || true
        echo "postgresql://rma@127.0.0.1:$port/rma" | tee "$dir/url"
        exit 0
      fi
    done
    echo "pg.sh: could not start PostgreSQL; see $dir/server.log" >&2
    tail -n 20 "$dir/server.log" >&2 || true
    exit 1
    ;;
  stop)
    [[ -f "$dir/data/PG_VERSION" ]] || exit 0
    # Fast shutdown, and immediate when that takes more than a few seconds: callers (the demo's Ctrl-C,
    # a test's cleanup) promise to be done quickly, and this data is throwaway.
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 5 stop >/dev/null 2>&1; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 5 stop >/dev/null 2>&1 || true
    fi
    ;;
  url)
    cat "$dir/url"
    ;;
  *)
    echo "usage: $0 start|stop|url DIR" >&2; exit 2 ;;
esac
