#!/usr/bin/env bash
# Builds rma-broker and broker_bench in Release and runs the three broker benchmarks with the parameters
# quoted in docs/benchmarks.md. Usage: bench/run_broker_bench.sh [throughput|latency|scale|all|curve]
#   curve: the cost of CurveZMQ (issue 13) in one run: throughput and lockstep p50 with and without
#          CURVE (ROUNDS runs of each, default 5, alternating, so both see the same load), medians and
#          ratios, nproc and the load average; then 10,000 simulated workers registering and
#          heartbeating with and without CURVE (the registration time, the broker's CPU and RSS).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
build=${BUILD_DIR:-$root/build/bench}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --target broker_bench rma-broker -j "$(nproc)"
what=${1:-all}
if [[ $what == throughput || $what == all ]]; then "$build/bin/broker_bench" throughput --workers 2 --runs 5; fi
if [[ $what == latency || $what == all ]]; then "$build/bin/broker_bench" latency --runs 5; fi
if [[ $what == scale || $what == all ]]; then
  "$build/bin/broker_bench" scale --sim-workers 10000 --procs 4 --heartbeat-ms 1000 --measure-s 20 --tasks 200000
fi
if [[ $what == curve ]]; then
  bench=$build/bin/broker_bench
  rounds=${ROUNDS:-5}
  echo "== CURVE vs plaintext: nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), $rounds rounds, alternating"
  echo "   throughput: 2 in-process echo workers x 256 slots, 1,000,000 async tasks of 64 B per run"
  echo "   latency: 1 echo worker, one synchronous task at a time, 20,000 samples per run"
  declare -A tput lat
  for ((i = 1; i <= rounds; i++)); do
    for mode in plain curve; do
      flag=(); [[ $mode == curve ]] && flag=(--curve)
      t=$("$bench" throughput --workers 2 --runs 1 "${flag[@]}" 2>&1 | throughput_of)
      l=$("$bench" latency --runs 1 "${flag[@]}" 2>&1 | p50_of)
      echo "   round $i $mode: $t tasks/s, p50 $l us   (load $(cut -d' ' -f1 /proc/loadavg))"
      tput[$mode]+="$t "
      lat[$mode]+="$l "
    done
  done
  tp=$(echo "${tput[plain]}" | median); tc=$(echo "${tput[curve]}" | median)
  lp=$(echo "${lat[plain]}" | median); lc=$(echo "${lat[curve]}" | median)
  echo "== medians   plaintext: $tp tasks/s, p50 $lp us   CURVE: $tc tasks/s, p50 $lc us"
  awk -v a="$tc" -v b="$tp" -v c="$lc" -v d="$lp" 'BEGIN {
    printf "== CURVE / plaintext: throughput %.3f (target >= 0.70: %s), p50 %+.1f us (target <= +30 us: %s)\n",
      a / b, (a / b >= 0.70 ? "met" : "MISSED"), c - d, (c - d <= 30 ? "met" : "MISSED") }'
  echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  for mode in plain curve; do
    flag=(); [[ $mode == curve ]] && flag=(--curve)
    echo "== scale, $mode (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    "$bench" scale --sim-workers 10000 --procs 4 --heartbeat-ms 1000 --measure-s 20 --tasks 200000 "${flag[@]}"
  done
  echo "== registration target (CURVE): 10,000 workers in < 30 s"
fi
