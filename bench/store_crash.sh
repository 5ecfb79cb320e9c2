#!/usr/bin/env bash
# Longer crash runs than CI's: tests/store/crash_test.cc with more kills and more load, against a private
# PostgreSQL. Each test prints its seed (RMA_CRASH_SEED=... replays the same moments).
#   bench/store_crash.sh [KILLS] [RATE]      defaults: 20 kills/restarts per test, 2000 tasks/s offered
# Needs a build with tests (scripts/test.sh builds build/test; BUILD_DIR to use another).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-$root/build/test}
[[ -x "$build/bin/store_crash_test" ]] || { echo "no $build/bin/store_crash_test: run scripts/test.sh first" >&2; exit 1; }
work=$(mktemp -d /tmp/rma-store-crash.XXXXXX)
chmod 755 "$work"
trap 'bash scripts/pg.sh stop "$work/pg" || true; rm -rf "$work"' EXIT
RMA_TEST_PG_URL=$(bash scripts/pg.sh start "$work/pg")
export RMA_TEST_PG_URL RMA_REQUIRE_PG=1
export RMA_CRASH_KILLS=${1:-20} RMA_CRASH_RATE=${2:-2000}
"$build/bin/store_crash_test"
