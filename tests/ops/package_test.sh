#!/usr/bin/env bash
# The Debian packages and `cmake --install` (cmake/RmaInstall.cmake, cmake/RmaPackage.cmake):
#   tests/ops/package_test.sh BUILD_DIR SOURCE_DIR
# 1. `cpack -G DEB` builds rma-broker, rma-gateway, rma-worker and rmactl; lintian finds no error or
#    warning (overrides are explained in deploy/debian/*.lintian-overrides).
# 2. dpkg -I: /etc files are conffiles, postinst creates the rma system user and never enables or
#    starts a service, Depends come from dpkg-shlibdeps (plus adduser).
# 3. Unpacked with dpkg -x into a scratch root: every program's --version runs from there, the man
#    pages are there, `systemd-analyze verify` accepts the units with the packaged ExecStart paths
#    and the hardening the units promise is in them.
# 4. The shipped /etc files work: broker, gateway and worker from the scratch root, started with
#    their /etc/default settings and /etc/rma JSON files (only addresses and paths moved to scratch
#    ones), form a pool: the gateway reaches the broker and lists the worker.
# 5. `cmake --install --prefix` elsewhere puts /etc and the units under that prefix, with ExecStart
#    pointing into it.
# Never installs anything on this machine; stops every process it starts.
set -euo pipefail
build=$(cd "$1" && pwd); src=$(cd "$2" && pwd)
version=$(cat "$build/version.txt")
project_version=${version%%+*}
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

tmp=$(mktemp -d /tmp/rma-package-test.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# ---- 1. Build the packages and lint them ----------------------------------------------------------
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/packages" >"$tmp/cpack.log" 2>&1 ||
  { cat "$tmp/cpack.log"; fail "cpack failed"; }
declare -A deb
for pkg in rma-broker rma-gateway rma-worker rmactl; do
  deb[$pkg]=$(ls "$tmp/packages/${pkg}_${project_version}_"*.deb 2>/dev/null || true)
  [[ -f "${deb[$pkg]}" ]] || fail "no package $pkg in $(ls "$tmp/packages")"
done
ok "cpack built ${deb[*]##*/}"
# Warnings count as much as errors. (As root, lintian says it would rather not run; that is all.)
lintian_rc=0
lintian --fail-on error,warning "${deb[@]}" >"$tmp/lintian.out" 2>&1 || lintian_rc=$?
grep -v 'running with root privileges' "$tmp/lintian.out" >"$tmp/lintian.log" || true
[[ $lintian_rc -eq 0 && ! -s "$tmp/lintian.log" ]] || { cat "$tmp/lintian.log"; fail "lintian is not clean"; }
ok "lintian: no errors, no warnings"

# ---- 2. Control data ----------------------------------------------------------------------------
for component in broker gateway worker; do
  pkg=rma-$component
  control=$tmp/control-$pkg
  dpkg-deb -e "${deb[$pkg]}" "$control"
  conffiles=$(cat "$control/conffiles")
  [[ "$conffiles" == *"/etc/default/$pkg"* && "$conffiles" == *"/etc/rma/$component.json"* ]] ||
    fail "$pkg conffiles: $conffiles"
  grep -q 'adduser --system --group --home /var/lib/rma' "$control/postinst" ||
    fail "$pkg postinst does not create the rma user"
  if grep -Eq '(systemctl|deb-systemd-invoke)[^#]*\b(start|enable)\b|deb-systemd-helper[^#]*\benable\b' \
      "$control/postinst"; then
    fail "$pkg postinst enables or starts a service"
  fi
  depends=$(dpkg-deb -f "${deb[$pkg]}" Depends)
  [[ "$depends" == *adduser* && "$depends" == *libc6* && "$depends" == *libzmq5* ]] ||
    fail "$pkg Depends: $depends"
  ok "$pkg: conffiles, user, no service started, Depends: $depends"
done
[[ "$(dpkg-deb -f "${deb[rma-broker]}" Depends)" == *libpqxx* ]] || fail "rma-broker does not depend on libpqxx"
[[ "$(dpkg-deb -f "${deb[rma-worker]}" Depends)" != *libpqxx* ]] || fail "rma-worker depends on libpqxx"

# ---- 3. Unpacked: programs, man pages, units -------------------------------------------------------
root=$tmp/root
for pkg in "${!deb[@]}"; do dpkg-deb -x "${deb[$pkg]}" "$root"; done
for p in rma-broker rma-gateway rma-worker rmactl; do
  got=$("$root/usr/bin/$p" --version)
  [[ "$got" == "$p $version" ]] || fail "$root/usr/bin/$p --version: '$got', want '$p $version'"
  zcat "$root/usr/share/man/man1/$p.1.gz" | grep -q '^\.TH "\?'"${p^^}" || fail "no man page for $p"
  [[ -f "$root/usr/share/doc/$p/copyright" ]] || fail "no copyright file for $p"
  ok "$got (from the package), man page"
done

# systemd-analyze resolves ExecStart= and the units' dependencies under --root: give it the host's
# own units (targets) beside ours. It exits 0 even for unknown keys or bad values, which it only
# logs, so any output is a failure too.
cp -rn /lib/systemd/system/. "$root/lib/systemd/system/"
# rma-broker.service reloads with the host's /bin/kill (procps, on every Debian system).
mkdir -p "$root/bin" && cp -n /bin/kill "$root/bin/kill"
for unit in rma-broker rma-gateway rma-worker; do
  file=$root/lib/systemd/system/$unit.service
  out=$(systemd-analyze verify --man=no --root="$root" "$file" 2>&1) || fail "$unit: $out"
  [[ -z "$out" ]] || fail "systemd-analyze verify $unit.service: $out"
  for line in "ExecStart=/usr/bin/$unit" "User=rma" "Group=rma" "EnvironmentFile=-/etc/default/$unit" \
      "Restart=on-failure" "NoNewPrivileges=yes" "ProtectSystem=strict" "ProtectHome=yes" \
      "PrivateTmp=yes" "StateDirectory=rma/${unit#rma-}" "WantedBy=multi-user.target"; do
    grep -qx "$line" "$file" || fail "$unit.service lacks $line"
  done
  ok "$unit.service: systemd-analyze verify is silent; hardening and settings present"
done
[[ $(stat -c %a "$root/etc/default/rma-gateway") == 600 ]] || fail "/etc/default/rma-gateway is not 0600"

# ---- 4. The shipped /etc files make a pool ---------------------------------------------------------
# Each program reads its /etc/default file as systemd would (KEY=VALUE lines) and its JSON file; only
# the addresses and paths below are moved to scratch ones.
run_service() {  # run_service NAME LOG VAR=VALUE...
  local name=$1 log=$2; shift 2
  ( set -a; . "$root/etc/default/$name"; set +a
    export RMA_CONFIG=${RMA_CONFIG:+$root$RMA_CONFIG}
    export RMA_GATEWAY_CONFIG=${RMA_GATEWAY_CONFIG:+$root$RMA_GATEWAY_CONFIG}
    export "$@"
    exec "$root/usr/bin/$name" ) >"$log" 2>&1 &
  pids+=($!)
}
wait_file() {
  for _ in $(seq 300); do [[ -s "$1" ]] && return 0; sleep 0.05; done
  return 1
}
# As the unit's ExecStartPre does in /var/lib/rma/broker: the broker's CURVE key, made once.
"$root/usr/bin/rma-broker" keygen "$tmp/broker-state" --name broker --if-missing >/dev/null 2>&1 ||
  fail "rma-broker keygen failed"
"$root/usr/bin/rma-broker" keygen "$tmp/broker-state" --name broker --if-missing ||
  fail "rma-broker keygen --if-missing fails on an existing key"
run_service rma-broker "$tmp/broker.log" RMA_WORKERS='tcp://127.0.0.1:*' RMA_CLIENTS='tcp://127.0.0.1:*' \
  RMA_ENDPOINTS_FILE="$tmp/endpoints" RMA_HEARTBEAT_MS=300 \
  RMA_CURVE_SECRET_FILE="$tmp/broker-state/broker.key"
wait_file "$tmp/endpoints" || { cat "$tmp/broker.log"; fail "the broker did not start with its shipped settings"; }
grep -q "$root/etc/rma/broker.json" <(tr '\0' '\n' </proc/"${pids[0]}"/environ) || fail "broker.json was not used"
workers_ep=$(sed -n 1p "$tmp/endpoints"); clients_ep=$(sed -n 2p "$tmp/endpoints")
run_service rma-gateway "$tmp/gateway.log" RMA_BROKER="$clients_ep" RMA_LISTEN=127.0.0.1:0 \
  RMA_PORT_FILE="$tmp/port" RMA_ADMIN_KEYS=package-test-admin-key
wait_file "$tmp/port" || { cat "$tmp/gateway.log"; fail "the gateway did not start with its shipped settings"; }
api=http://127.0.0.1:$(cat "$tmp/port")
run_service rma-worker "$tmp/worker.log" RMA_BROKER="$workers_ep" RMA_DATA_DIR="$tmp/worker" \
  RMA_NAME=package-test-worker RMA_BROKER_KEY="$tmp/broker-state/broker.pub"
listed=""
for _ in $(seq 200); do
  listed=$(curl -s -H 'X-API-Key: package-test-admin-key' "$api/api/admin/workers" || true)
  [[ "$listed" == *'"package-test-worker"'* && "$listed" == *'"healthy"'* ]] && break
  sleep 0.05
done
[[ "$listed" == *'"package-test-worker"'* ]] ||
  { cat "$tmp/broker.log" "$tmp/gateway.log" "$tmp/worker.log"; fail "the worker never appeared: $listed"; }
health=$(curl -s "$api/health")
[[ "$health" == *'"broker":"reachable"'* || "$health" == *'"broker": "reachable"'* ]] || fail "gateway health: $health"
grep -q "(CURVE)" "$tmp/broker.log" || fail "the shipped broker settings do not turn CURVE on"
ok "broker, gateway and worker run with the shipped /etc files and form a pool (worker link: CURVE)"
for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for pid in "${pids[@]}"; do wait "$pid" || fail "a service exited with $? on SIGTERM"; done
pids=()

# ---- 5. cmake --install elsewhere ------------------------------------------------------------------
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "cmake --install"; }
for f in bin/rma-broker bin/rma-gateway bin/rma-worker bin/rmactl share/man/man1/rmactl.1.gz \
    etc/default/rma-worker etc/rma/gateway.json lib/systemd/system/rma-gateway.service \
    share/doc/rma-gateway/examples/nginx/rma-gateway.conf; do
  [[ -e "$prefix/$f" ]] || fail "cmake --install did not install $f"
done
grep -qx "ExecStart=$prefix/bin/rma-worker" "$prefix/lib/systemd/system/rma-worker.service" ||
  fail "the installed unit does not run $prefix/bin/rma-worker"
[[ ! -e "$prefix/share/lintian" ]] || fail "lintian overrides outside a package"
ok "cmake --install --prefix $prefix"
