#!/usr/bin/env bash
# Builds rma-broker and broker_bench in Release and runs the three broker benchmarks with the parameters
# quoted in docs/benchmarks.md. Usage: bench/run_broker_bench.sh [throughput|latency|scale|all]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build/bench}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target broker_bench rma-broker -j "$(nproc)"
what=${1:-all}
if [[ $what == throughput || $what == all ]]; then "$build/bin/broker_bench" throughput --workers 2 --runs 5; fi
if [[ $what == latency || $what == all ]]; then "$build/bin/broker_bench" latency --runs 5; fi
if [[ $what == scale || $what == all ]]; then
  "$build/bin/broker_bench" scale --sim-workers 10000 --procs 4 --heartbeat-ms 1000 --measure-s 20 --tasks 200000
fi
