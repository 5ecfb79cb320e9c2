#!/usr/bin/env bash
# Streamed answers through the pool against the backend called directly, in the same run (issue
# 15; figures in docs/benchmarks.md, "Streamed answers (issue 15)"). Each round runs
# bench/stream_bench.cc once: a fresh rma-broker, one rma-worker (--slots SLOTS, service
# llm=http://127.0.0.1:PORT) and rma-gateway (--max-connections-per-ip 0, --call-timeout-ms
# 600000), with the OpenAI-compatible TestBackend in the benchmark's own process (its write times
# and the client's arrival times are on one clock), then:
#   ttfb     TTFB_SAMPLES requests per path, one at a time, paths alternating (1 token, no delay):
#            request written -> first byte of the answer, and -> first token event;
#   latency  per path STREAMS concurrent streams x TOKENS tokens DELAY_MS apart: per-chunk
#            latency = arrival at the client - the backend's write;
#   scale    SCALE_STREAMS concurrent streams x SCALE_TOKENS tokens SCALE_DELAY_MS apart through
#            the gateway's service route: streams complete, chunks lost, chunks/s, per-chunk
#            latency, VmHWM of gateway, broker and worker (/proc/PID/status), their CPU time.
# Paths: direct (client -> backend), service (POST /api/service/llm/v1/chat/completions through
# gateway, broker, worker), openai (POST /v1/chat/completions on the gateway, routed by model).
# Prints every round and the median of ROUNDS rounds of each figure, nproc and the load average.
#   bench/stream_bench.sh [ROUNDS]     default 3
#   STREAMS=20 TOKENS=200 DELAY_MS=5 TTFB_SAMPLES=100 SCALE_STREAMS=500 SCALE_TOKENS=1000
#   SCALE_DELAY_MS=50 SLOTS=600 SKIP_SCALE=1 (ttfb and latency only)
#   BUILD_DIR (default build/bench, Release; configured if missing)
#   BASE_BIN=DIR  also run each round with the rma-broker, rma-worker and rma-gateway in DIR (a
#                 build of the previous commit: `git worktree add /tmp/base HEAD~1`, build there)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
rounds=${1:-3}
STREAMS=${STREAMS:-20}; TOKENS=${TOKENS:-200}; DELAY_MS=${DELAY_MS:-5}; TTFB_SAMPLES=${TTFB_SAMPLES:-100}
SCALE_STREAMS=${SCALE_STREAMS:-500}; SCALE_TOKENS=${SCALE_TOKENS:-1000}; SCALE_DELAY_MS=${SCALE_DELAY_MS:-50}
SLOTS=${SLOTS:-600}; SKIP_SCALE=${SKIP_SCALE:-0}
build=${BUILD_DIR:-$root/build/bench}
bin=$build/bin

# An existing build directory is used as it is configured (it should be Release).
if [[ ! -f $build/CMakeCache.txt ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRMA_BUILD_TESTS=ON -DRMA_BUILD_BENCHMARKS=ON \
    -DRMA_BUILD_DASHBOARD=OFF >/dev/null
fi
if ! cmake --build "$build" --target rma-broker rma-worker rma-gateway stream_bench -j "$(nproc)" >"/tmp/stream-bench-build.$$.log" 2>&1; then
  tail -n 30 "/tmp/stream-bench-build.$$.log" >&2; rm -f "/tmp/stream-bench-build.$$.log"; exit 1
fi
rm -f "/tmp/stream-bench-build.$$.log"
# 500 streams hold about 1,000 sockets in this process (client and backend ends) and 500 in the
# gateway and the worker each.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

work=$(mktemp -d /tmp/rma-stream-bench.XXXXXX)
child=
cleanup() {
  # stream_bench kills its broker, worker and gateway on SIGTERM.
  [[ -n $child ]] && kill -TERM "$child" 2>/dev/null && wait "$child" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
results=$work/results
: >"$results"

args=(--streams "$STREAMS" --tokens "$TOKENS" --delay-ms "$DELAY_MS" --ttfb-samples "$TTFB_SAMPLES"
  --scale-streams "$SCALE_STREAMS" --scale-tokens "$SCALE_TOKENS" --scale-delay-ms "$SCALE_DELAY_MS"
  --slots "$SLOTS")
[[ $SKIP_SCALE == 1 ]] && args+=(--skip-scale)

echo "== stream_bench.sh: rounds=$rounds streams=$STREAMS tokens=$TOKENS delay_ms=$DELAY_MS ttfb_samples=$TTFB_SAMPLES scale_streams=$SCALE_STREAMS scale_tokens=$SCALE_TOKENS scale_delay_ms=$SCALE_DELAY_MS slots=$SLOTS skip_scale=$SKIP_SCALE"
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- broker gateway worker protocol common || rev="$rev (with uncommitted changes in the pool's sources)"
else
  rev="? (not a git checkout)"
fi
echo "== commit $rev; build $build; ulimit -n $(ulimit -n)"
echo "== machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# run PREFIX BIN_DIR: one stream_bench run, its figures recorded under PREFIX.
run() {
  local prefix=$1 dir=$2 rc=0
  "$bin/stream_bench" --bin-dir "$dir" "${args[@]}" >"$work/out" 2>&1 &
  child=$!
  wait "$child" || rc=$?
  child=
  grep -v '^fig ' "$work/out" | sed "s/^/$prefix: /"
  awk -v p="$prefix" '/^fig / {print p "_" $2, $3}' "$work/out" >>"$results"
  [[ $rc == 0 ]] || echo "$prefix: stream_bench exited with $rc"
}

for round in $(seq "$rounds"); do
  echo "-- round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  run rma "$bin"
  [[ -n ${BASE_BIN:-} ]] && run base "$BASE_BIN"
done

echo "== medians of $rounds round(s); nproc=$(nproc); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" <<'PY'
import statistics, sys
vals = {}
for line in open(sys.argv[1]):
    k, _, v = line.strip().partition(" ")
    if v:
        vals.setdefault(k, []).append(float(v))
prefixes = [p for p in ("rma", "base") if any(k.startswith(p + "_") for k in vals)]
def med(p, k):
    v = vals.get(f"{p}_{k}")
    return statistics.median(v) if v else None
def fmt(x, scale=1.0, digits=0):
    return "" if x is None else f"{x / scale:.{digits}f}"
rows = [
    # (label, key, scale, digits)
    ("TTFB p50, direct (us): request written -> first byte", "ttfb_direct_p50_us", 1, 0),
    ("TTFB p50, service route (us)", "ttfb_service_p50_us", 1, 0),
    ("TTFB p50, OpenAI route (us)", "ttfb_openai_p50_us", 1, 0),
    ("**TTFB added, service route (us)** (target <= 1000)", "ttfb_added_service_p50_us", 1, 0),
    ("**TTFB added, OpenAI route (us)** (target <= 1000)", "ttfb_added_openai_p50_us", 1, 0),
    ("first token: request to the backend / first token back, direct (us)", "legs_direct", 1, 0),
    ("first token: request to the backend / first token back, service route (us)", "legs_service", 1, 0),
    ("first token: request to the backend / first token back, OpenAI route (us)", "legs_openai", 1, 0),
    ("first token p50, direct (us)", "ttft_direct_p50_us", 1, 0),
    ("first token added, service route (us)", "ttft_added_service_p50_us", 1, 0),
    ("first token added, OpenAI route (us)", "ttft_added_openai_p50_us", 1, 0),
    ("chunk latency p50 / p90 / p99, direct (us)", "lat_direct", 1, 0),
    ("chunk latency p50 / p90 / p99, service route (us)", "lat_service", 1, 0),
    ("chunk latency p50 / p90 / p99, OpenAI route (us)", "lat_openai", 1, 0),
    ("**chunk latency added p50, service route (us)** (target <= 500)", "lat_added_service_p50_us", 1, 0),
    ("**chunk latency added p50, OpenAI route (us)** (target <= 500)", "lat_added_openai_p50_us", 1, 0),
    ("scale: streams complete", "scale_complete", 1, 0),
    ("scale: chunks lost", "scale_lost_chunks", 1, 0),
    ("scale: wall time (s)", "scale_seconds", 1, 1),
    ("scale: chunks/s", "scale_chunks_per_s", 1, 0),
    ("scale: chunk latency p50 / p99 (us)", "scale_lat", 1, 0),
    ("scale: first token p50 (ms)", "scale_ttft_p50_us", 1000, 1),
    ("scale: request reached the backend p50 (ms)", "scale_request_leg_p50_us", 1000, 1),
    ("**scale: gateway VmHWM (MB)** (target < 200)", "scale_gateway_hwm_mb", 1, 1),
    ("scale: broker VmHWM (MB)", "scale_broker_hwm_mb", 1, 1),
    ("scale: worker VmHWM (MB)", "scale_worker_hwm_mb", 1, 1),
    ("gateway / broker / worker VmHWM before the scale phase (MB)", "pre_hwm", 1, 1),
    ("scale: CPU s gateway / broker / worker", "scale_cpu", 1, 2),
    ("failures (streams or requests not complete)", "failures", 1, 0),
]
print("| figure (median of rounds) | " + " | ".join("this commit" if p == "rma" else "BASE_BIN" for p in prefixes) + " |")
print("|---|" + "---|" * len(prefixes))
for label, key, scale, digits in rows:
    cells = []
    for p in prefixes:
        if key in ("lat_direct", "lat_service", "lat_openai"):
            parts = [med(p, f"{key}_{q}_us") for q in ("p50", "p90", "p99")]
        elif key.startswith("legs_"):
            parts = [med(p, f"ttft_{key[5:]}_{leg}_leg_p50_us") for leg in ("request", "answer")]
        elif key == "scale_lat":
            parts = [med(p, f"scale_lat_{q}_us") for q in ("p50", "p99")]
        elif key == "pre_hwm":
            parts = [med(p, f"pre_{x}_hwm_mb") for x in ("gateway", "broker", "worker")]
        elif key == "scale_cpu":
            parts = [med(p, f"scale_cpu_{x}_s") for x in ("gateway", "broker", "worker")]
        else:
            parts = [med(p, key)]
        cells.append(" / ".join(fmt(x, scale, digits) for x in parts))
    if any(cells):
        print(f"| {label} | " + " | ".join(cells) + " |")
PY
