#!/usr/bin/env bash
# The version every program reports (cmake/rma_version.cmake, common/version.h):
#   tests/ops/version_test.sh BIN_DIR VERSION_FILE SOURCE_DIR PROJECT_VERSION
# 1. rma-broker, rma-worker, rma-gateway and rmactl --version print "NAME VERSION" with the version
#    the build wrote (the project version + `git describe`), all four the same.
# 2. The generator, run on scratch trees: a tarball (no .git) gets the project version; a git tree
#    gets "+describe" with -dirty when it has changes; a build of the release tag is the release;
#    GIT_DESCRIBE overrides git; an unchanged version leaves the generated file untouched (so nothing
#    recompiles).
set -euo pipefail
bin=$1; version_file=$2; src=$3; project=$4
fail() { echo "FAIL: $*" >&2; exit 1; }

want=$(cat "$version_file")
[[ "$want" == "$project" || "$want" == "$project+"* ]] || fail "version.txt '$want' does not start with $project"
for p in rma-broker rma-worker rma-gateway rmactl; do
  got=$("$bin/$p" --version)
  [[ "$got" == "$p $want" ]] || fail "$p --version printed '$got', want '$p $want'"
  echo "ok: $got"
done

tmp=$(mktemp -d /tmp/rma-version-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
gen() {  # gen TREE [extra -D...]: prints the generated version
  local tree=$1; shift
  cmake -DSOURCE_DIR="$tree" -DOUTPUT="$tmp/version.cc" -DPROJECT_VERSION=1.2.3 -DGIT="$(command -v git)" \
        -DTEXT_OUTPUT="$tmp/version.txt" "$@" -P "$src/cmake/rma_version.cmake"
  cat "$tmp/version.txt"
}
expect() { [[ "$1" == "$2" ]] || fail "$3: got '$1', want '$2'"; echo "ok: $3 -> $1"; }

mkdir "$tmp/tarball"
expect "$(gen "$tmp/tarball")" "1.2.3" "a tree without .git"
grep -q 'kGitDescribe = "";' "$tmp/version.cc" || fail "kGitDescribe of a tarball is not empty"

repo=$tmp/repo
git init -q "$repo"
git -C "$repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m one
hash=$(git -C "$repo" rev-parse --short HEAD)
expect "$(gen "$repo")" "1.2.3+$hash" "an untagged commit"
git -C "$repo" tag v1.2.3
expect "$(gen "$repo")" "1.2.3" "the release tag itself"
echo change > "$repo/file"; git -C "$repo" add file
expect "$(gen "$repo")" "1.2.3+v1.2.3-dirty" "the release tag with changes"
git -C "$repo" -c user.name=t -c user.email=t@t commit -q -m two
hash=$(git -C "$repo" rev-parse --short HEAD)
expect "$(gen "$repo")" "1.2.3+v1.2.3-1-g$hash" "one commit after the tag"
expect "$(gen "$tmp/tarball" -DGIT_DESCRIBE=abc1234)" "1.2.3+abc1234" "GIT_DESCRIBE without git"
expect "$(gen "$tmp/tarball" '-DGIT_DESCRIBE=x"y;z')" "1.2.3+xyz" "GIT_DESCRIBE is sanitised"

# Same version again: the generated source keeps its time stamp.
gen "$repo" >/dev/null
touch -d '2000-01-01' "$tmp/version.cc"
gen "$repo" >/dev/null
[[ $(stat -c %Y "$tmp/version.cc") == $(date -d '2000-01-01' +%s) ]] || fail "an unchanged version rewrote version.cc"
echo "ok: an unchanged version leaves version.cc alone"
