#!/usr/bin/env bash
# Style checks: clang-format on every C++ file, and (unless --format-only) clang-tidy over the build's
# compile_commands.json. --thread-safety instead compiles every source with clang (syntax only) under
# -Wthread-safety -Werror, so the lock contracts written with common/mutex.h are checked (and the
# code keeps building with clang).
#   scripts/lint.sh [--format-only] [--fix] [--thread-safety]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
format_only=0; fix=0; thread_safety=0
for a in "$@"; do
  case "$a" in
    --format-only) format_only=1 ;;
    --fix) fix=1 ;;
    --thread-safety) thread_safety=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
if [[ $thread_safety -eq 1 ]]; then
  build=${BUILD_DIR:-build/test}
  [[ -f "$build/compile_commands.json" ]] || { echo "build first (scripts/test.sh)" >&2; exit 1; }
  # Each translation unit of rma's own code (not tests: fakes there may lock as they like) with the
  # compile database's flags, clang instead of GCC, and only the checks that matter here.
  python3 - "$build/compile_commands.json" "$root" <<'PY'
import json, os, shlex, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
db, root = json.load(open(sys.argv[1])), sys.argv[2]
own = ("common/", "protocol/", "broker/", "worker/", "gateway/", "cli/")
jobs = []
for e in db:
    rel = os.path.relpath(e["file"], root)
    if not rel.startswith(own) or rel.endswith("_test.cc") or "/testdata/" in rel:
        continue
    args = shlex.split(e["command"]) if "command" in e else e["arguments"]
    keep = [a for a in args[1:] if a.startswith(("-I", "-D", "-isystem", "-std=")) or a in ("-isystem",)]
    # -isystem takes its path as the next argument.
    flags, i = [], 1
    while i < len(args):
        a = args[i]
        if a == "-isystem":
            flags += [a, args[i + 1]]; i += 2; continue
        if a.startswith(("-I", "-D", "-std=")) or (a.startswith("-isystem") and len(a) > 8):
            flags.append(a)
        i += 1
    jobs.append((rel, ["clang++", "-fsyntax-only", "-Wthread-safety", "-Werror=thread-safety",
                       "-Wno-unknown-warning-option"] + flags + [e["file"]], e["directory"]))
def run(job):
    rel, cmd, cwd = job
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    return rel, p.returncode, p.stderr
failed = 0
with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
    for rel, code, err in pool.map(run, jobs):
        if code != 0:
            failed += 1
            print(err, end="")
if failed:
    print(f"clang -Wthread-safety: {failed} of {len(jobs)} file(s) failed", file=sys.stderr)
    sys.exit(1)
print(f"clang -Wthread-safety: {len(jobs)} files clean")
PY
  exit 0
fi
mapfile -t files < <(git ls-files '*.cc' '*.h')
if [[ $fix -eq 1 ]]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run --Werror "${files[@]}"
fi
echo "clang-format: ${#files[@]} files clean"
[[ $format_only -eq 1 || $fix -eq 1 ]] && exit 0
build=${BUILD_DIR:-build/test}
[[ -f "$build/compile_commands.json" ]] || { echo "build first (scripts/test.sh)" >&2; exit 1; }
mapfile -t sources < <(git ls-files '*.cc' | grep -v '^tests/browser/')
# clang-tidy 14 does not know GCC's -Wshadow=local from the compile database.
clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option "${sources[@]}"
echo "clang-tidy: clean"
