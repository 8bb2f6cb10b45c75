#!/usr/bin/env bash
# RUSTC_WRAPPER for bench/ci-time.sh: runs the compiler under /usr/bin/time and appends
# one line per crate compiled to $CI_TIME_LOG:
#   <epoch> <user s> <sys s> <wall s> <crate> <opt-level> <crate-type> <out-dir>
# Nested cargo runs (the end-to-end tests' builds) inherit RUSTC_WRAPPER, so every target
# directory of a run is seen. Invocations without --out-dir (`rustc -vV`, probes) pass through.
log="${CI_TIME_LOG:?CI_TIME_LOG names the log file}"
out=""; name="-"; prev=""; opt=0; typ=lib
for a in "$@"; do
    case "$prev" in
        --out-dir) out="$a" ;;
        --crate-name) name="$a" ;;
        --crate-type) typ="$a" ;;
    esac
    case "$a" in opt-level=*) opt="${a#opt-level=}" ;; esac
    prev="$a"
done
if [ -z "$out" ]; then
    exec "$@"
fi
exec /usr/bin/time -f "$(date +%s) %U %S %e $name $opt $typ $out" -a -o "$log" "$@"
