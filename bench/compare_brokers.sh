#!/usr/bin/env bash
# Compares this tree's rma-broker with another commit's, in one run: builds both in Release, then runs
# bench/broker_bench (this tree's client and echo workers) against each broker in turn, alternating, so
# both see the same machine load. Prints every run, the medians and their ratio, with nproc and the load
# average. The wire protocol is the same for both, so one client drives either broker.
#   bench/compare_brokers.sh [BASE_REF] [ROUNDS]     default: HEAD~1, 5 rounds
# Environment: BUILD_DIR (this tree's Release build, default build/bench), BASE_DIR (where the other
# commit is checked out and built, default /tmp/rma-compare-<sha>).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
base_ref=${1:-HEAD~1}
rounds=${2:-5}
base_sha=$(git -C "$root" rev-parse --short "$base_ref")
build=${BUILD_DIR:-$root/build/bench}
base_dir=${BASE_DIR:-/tmp/rma-compare-$base_sha}

echo "== building this tree ($(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo -dirty)) in $build"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_DASHBOARD=OFF >/dev/null
cmake --build "$build" --target broker_bench rma-broker -j "$(nproc)" >/dev/null
echo "== building $base_ref ($base_sha) in $base_dir"
if [[ ! -d "$base_dir/src" ]]; then
  mkdir -p "$base_dir"
  git clone -q "$root" "$base_dir/src"
  git -C "$base_dir/src" checkout -q "$base_sha"
fi
cmake -S "$base_dir/src" -B "$base_dir/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DRMA_BUILD_DASHBOARD=OFF -DRMA_BUILD_TESTS=OFF -DRMA_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$base_dir/build" --target rma-broker -j "$(nproc)" >/dev/null

bench=$build/bin/broker_bench
declare -A brokers=([base]="$base_dir/build/bin/rma-broker" [this]="$build/bin/rma-broker")
echo "== nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg), $rounds rounds, alternating"
echo "   throughput: 2 in-process echo workers x 256 slots, 1,000,000 async tasks of 64 B per run"
echo "   latency: one synchronous task at a time, 20,000 samples per run"
declare -A tput lat
for ((i = 1; i <= rounds; i++)); do
  for which in base this; do
    t=$("$bench" --broker-bin "${brokers[$which]}" throughput --workers 2 --runs 1 2>&1 | throughput_of)
    l=$("$bench" --broker-bin "${brokers[$which]}" latency --runs 1 2>&1 | p50_of)
    echo "   round $i $which: $t tasks/s, p50 $l us"
    tput[$which]+="$t "
    lat[$which]+="$l "
  done
done
tb=$(echo "${tput[base]}" | median); tt=$(echo "${tput[this]}" | median)
lb=$(echo "${lat[base]}" | median); lt=$(echo "${lat[this]}" | median)
echo "== medians   $base_sha: $tb tasks/s, p50 $lb us   this tree: $tt tasks/s, p50 $lt us"
awk -v a="$tt" -v b="$tb" -v c="$lt" -v d="$lb" \
  'BEGIN {printf "== this / %s: throughput %.3f, round trip p50 %.3f\n", "base", a / b, c / d}'
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
