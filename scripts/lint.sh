#!/usr/bin/env bash
# Style checks: clang-format on every C++ file, and (unless --format-only) clang-tidy over the build's
# compile_commands.json.   scripts/lint.sh [--format-only] [--fix]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
format_only=0; fix=0
for a in "$@"; do
  case "$a" in
    --format-only) format_only=1 ;;
    --fix) fix=1 ;;
    *) echo "unknown option $a" >&2; exit 2 ;;
  esac
done
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
