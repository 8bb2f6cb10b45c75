#!/usr/bin/env bash
# Where a CI run's time goes (docs/testing.md, "CI time"). Runs what scripts/test.sh runs
# after setup.sh (CI=true: fmt, clippy, every test) in a clean clone of REV, then prints
# the wall and CPU time of each step, the compilers' CPU per target directory (every
# nested cargo run of the tests included), how many target directories compiled a few
# heavy crates, and how long each test binary ran.
#
#   bench/ci-time.sh [REV]       (default HEAD; commit first)
#
# CI_TIME_SCOPE (default --workspace) replaces --workspace in the clippy and test steps,
# e.g. CI_TIME_SCOPE="-p kv-crunch" for a quick check of this script.
#
# The clone is $BENCH_SCRATCH/ci-time/<rev> (default /tmp/morgana-bench); delete it when
# done (a run's target directories take about 10 GB). Packages must be installed already
# (scripts/setup.sh). On a shared machine compare CPU times: wall times follow the load.
# Run it in the foreground: a job started with `&` by a non-interactive
# shell ignores SIGINT, its children inherit that, and the tests' Ctrl-C does nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
REV=$(git rev-parse --short "${1:-HEAD}")
WRAP=$(pwd)/bench/lib/rustc-cpu.sh
DIR=${BENCH_SCRATCH:-/tmp/morgana-bench}/ci-time/$REV
rm -rf "$DIR"
mkdir -p "$DIR"
git clone --quiet "$(pwd)" "$DIR/src"
git -C "$DIR/src" checkout --quiet "$REV"
LOG=$DIR/rustc.log
: >"$LOG"
cd "$DIR/src"
export CI=true MORGANA_ACCEL=tcg CARGO_INCREMENTAL=0 RUSTC_WRAPPER=$WRAP CI_TIME_LOG=$LOG
# The same variables as scripts/test.sh (read it: this script must follow it).
grep -q 'CARGO_INCREMENTAL=0' scripts/test.sh || unset CARGO_INCREMENTAL

step() { # name command...
    local name=$1
    shift
    local t0
    t0=$(date +%s)
    echo "$name start $t0" >>"$DIR/steps"
    /usr/bin/time -f "%e %U %S" -o "$DIR/$name.time" "$@"
    echo "$name end $(date +%s) status $?" >>"$DIR/steps"
}
stamp() { while IFS= read -r l; do printf '%(%s)T %s\n' -1 "$l"; done; }

step fmt cargo fmt --all --check
SCOPE=${CI_TIME_SCOPE:---workspace}
# shellcheck disable=SC2086 # SCOPE is words
step clippy cargo clippy $SCOPE --all-targets --quiet -- -D warnings
step test bash -c "set -o pipefail; $(declare -f stamp); cargo test $SCOPE --no-fail-fast 2>&1 | stamp >'$DIR/test.out'"

echo "== steps (wall s, user+sys s of cargo and all it ran)"
for s in fmt clippy test; do
    read -r wall user sys <"$DIR/$s.time"
    awk -v s="$s" -v w="$wall" -v u="$user" -v y="$sys" 'BEGIN { printf "%-7s wall %6.0f  cpu %7.0f\n", s, w, u + y }'
done
grep status "$DIR/steps" | awk '$5 != 0 {print "   (" $1 " exited " $5 ")"}'

echo "== compiler CPU (user+sys s) per target directory, crates compiled"
awk -v root="$DIR/src/" '$1 ~ /^[0-9]+$/ && NF >= 8 {
    d = $8; sub(root, "", d); sub(/\/(debug|release)(\/.*)?$/, "", d)
    cpu[d] += $2 + $3; n[d]++; total += $2 + $3
} END {
    for (d in cpu) printf "%8.0f %5d  %s\n", cpu[d], n[d], d
    printf "%8.0f        total\n", total
}' "$LOG" | sort -rn

echo "== target directories that compiled ... (cold builds of a dependency graph)"
for c in syn ring rustls smoltcp minijinja morgana_codegen; do
    printf '%-16s %s\n' "$c" "$(awk -v c="$c" -v root="$DIR/src/" '$5 == c && NF >= 8 {
        d = $8; sub(root, "", d); sub(/\/(debug|release)(\/.*)?$/, "", d); print d }' "$LOG" |
        sort -u | tr '\n' ' ')"
done

echo "== test binaries, longest first (wall s from its Running line to the next)"
end=$(awk '$1 == "test" && $2 == "end" {print $3}' "$DIR/steps")
awk -v end="$end" '$2 == "Running" || $2 == "Doc-tests" {
    if (name != "") print $1 - t, name
    t = $1; name = substr($0, index($0, $3))
} END { if (name != "") print end - t, name }' "$DIR/test.out" | sort -rn | head -25
echo "== failures"
grep -E '^[0-9]+ (test .* FAILED|failures:|error: )' "$DIR/test.out" | head -20
echo "(full output: $DIR/test.out; compiler log: $LOG)"
