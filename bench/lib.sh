# Shell helpers shared by the broker benchmark scripts (sourced, not run).
# median: the median of the whitespace-separated numbers on stdin.
median() {
  tr ' ' '\n' | grep -v '^$' | sort -g |
    awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
# The figure broker_bench prints, from its output on stdin: tasks/s of a throughput run, and the
# p50 in microseconds of a latency run.
throughput_of() { sed -n 's/.*throughput median: \([0-9]*\) tasks\/s.*/\1/p'; }
p50_of() { sed -n 's/.*p50 \([0-9.]*\) us.*/\1/p'; }
# The processes a script started (it appends their pids to `pids`), stopped and reaped.
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
# wait_file PATH: until PATH exists and is not empty (20 s at most).
wait_file() { for _ in $(seq 400); do [[ -s $1 ]] && return 0; sleep 0.05; done; echo "no $1" >&2; return 1; }
