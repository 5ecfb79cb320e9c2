#!/usr/bin/env bash
# The one command that installs what is missing, builds (Release, the build users run, with warnings as
# errors), starts a private PostgreSQL, runs every test with ctest and stops PostgreSQL again. Exits non-zero on
# any failure.
#   scripts/test.sh                 everything
#   scripts/test.sh -L unit         only tests with a ctest label (unit, e2e, pg, browser, ...)
#   scripts/test.sh -L console_scale   the console's page load times on a large pool (1,000 workers,
#                                   100,000 tasks; a measurement, ~2 minutes): left out of the default run
#   RMA_SANITIZE=asan scripts/test.sh   the same under AddressSanitizer + UndefinedBehaviorSanitizer
#                                       (tsan for ThreadSanitizer)
# Build directory: build/test (build/test-asan, build/test-tsan); override with BUILD_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh --browser

sanitize=${RMA_SANITIZE:-}
flags=(-DRMA_WERROR=ON -DCMAKE_BUILD_TYPE=Release)
suffix=""
case "$sanitize" in
  "") ;;
  asan) flags+=(-DRMA_ASAN=ON -DCMAKE_BUILD_TYPE=Debug); suffix="-asan" ;;
  tsan) flags+=(-DRMA_TSAN=ON -DCMAKE_BUILD_TYPE=Debug); suffix="-tsan" ;;
  *) echo "RMA_SANITIZE must be asan or tsan" >&2; exit 2 ;;
esac
build=${BUILD_DIR:-$root/build/test$suffix}

echo "== configure ($build)"
cmake -S . -B "$build" -G Ninja "${flags[@]}" >/dev/null
echo "== build"
cmake --build "$build" -j "$(nproc)"

pgdir=$(mktemp -d /tmp/rma-test-pg.XXXXXX)
cleanup() { bash scripts/pg.sh stop "$pgdir" || true; rm -rf "$pgdir"; }
trap cleanup EXIT
echo "== PostgreSQL"
RMA_TEST_PG_URL=$(bash scripts/pg.sh start "$pgdir")
export RMA_TEST_PG_URL
export RMA_REQUIRE_PG=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== tests"
# Without arguments: every test but the large-pool measurement (see the header).
[[ $# -eq 0 ]] && set -- -LE console_scale
ctest --test-dir "$build" --output-on-failure --no-tests=error -j "$(nproc)" "$@"
