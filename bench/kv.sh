#!/usr/bin/env bash
# The Redis-protocol server (components/resp over components/store, the Unix process
# `kv-server`) against redis-server 7 (Debian), in one run:
#
#   bench/kv.sh [--quick|--smoke]
#
# 1. throughput: redis-benchmark -t set,get -P 16 -c 50 against both, with the same
#    durability: redis-server --appendonly yes --appendfsync always vs kv-server
#    --durability always, then everysec vs everysec; alternating runs, medians, ratios
#    (goal >= 1.0 for GET and SET with each policy);
# 2. recovery: 1 M keys loaded, the server killed with SIGKILL, the time until it serves
#    again (and redis-server reloading the same keys from its AOF);
# 3. space: N overwrites (10 M in full mode) of 100 000 keys, then the bytes the store's
#    log occupies over its live data (and Redis's AOF growth over its last rewrite).
#
# Prints name=value lines as it goes (also appended to $BENCH_OUT, default
# target/h-bench/bench-results.txt) and a table at the end. Client, servers and the disk
# images share this machine: absolute figures move with its load, the ratios less so.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
export CARGO_TARGET_DIR=$BENCH_TARGET

MODE=full
for a in "$@"; do
  case "$a" in
    --quick) MODE=quick ;; --smoke) MODE=smoke ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
case $MODE in
  full)  N=2000000; REPS=3; KEYS=1000000; OVERWRITES=10000000 ;;
  quick) N=500000;  REPS=1; KEYS=1000000; OVERWRITES=2000000 ;;
  smoke) N=50000;   REPS=1; KEYS=20000;   OVERWRITES=100000 ;;
esac
for t in redis-server:redis-server redis-benchmark:redis-tools redis-cli:redis-tools python3:python3; do
  command -v "${t%%:*}" >/dev/null || apt_need "${t#*:}"
done
SCRATCH=${BENCH_SCRATCH:-/tmp/morgana-bench}/kv
BENCH_OUT=${BENCH_OUT:-$BENCH_TARGET/bench-results.txt}
export BENCH_RESULTS=$BENCH_OUT
rm -rf "$SCRATCH"; mkdir -p "$SCRATCH" "$(dirname "$BENCH_OUT")"
result kv_bench_mode "$MODE"
result kv_bench_loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"

PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: building kv-server and inspect (release)" >&2
cargo build --release --quiet -p morgana-resp --features example --example kv-server \
  --manifest-path "$BENCH_ROOT/Cargo.toml" >&2
cargo build --release --quiet -p morgana-store --example inspect \
  --manifest-path "$BENCH_ROOT/Cargo.toml" >&2
KV=$CARGO_TARGET_DIR/release/examples/kv-server
INSPECT=$CARGO_TARGET_DIR/release/examples/inspect

# start_kv POLICY DISK [SYNC] -> sets KV_PID, KV_PORT (waits until it listens)
start_kv() {
  local out=$SCRATCH/kv-$$.out
  : > "$out"
  "$KV" --disk "$2" --size-mib 2048 --port 0 --durability "$1" --sync "${3:-fdatasync}" > "$out" 2>>"$SCRATCH/kv.log" &
  KV_PID=$!; PIDS+=("$KV_PID")
  for _ in $(seq 1 3000); do grep -q listening "$out" && break; sleep 0.01; done
  KV_PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$out")
  [ -n "$KV_PORT" ] || { echo "bench: kv-server did not start:" >&2; tail "$SCRATCH/kv.log" >&2; exit 1; }
}
# start_redis POLICY DIR -> sets REDIS_PID, REDIS_PORT
start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$2"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync "$1" --dir "$2" --daemonize no --logfile "$2/redis.log" &
  REDIS_PID=$!; PIDS+=("$REDIS_PID")
  for _ in $(seq 1 3000); do
    [ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.01
  done
  echo "bench: redis-server did not start" >&2; exit 1
}
stop() { kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# rb PORT TEST -> requests per second (the last figure redis-benchmark prints)
rb() {
  redis-benchmark -p "$1" -t "$2" -P 16 -c 50 -n "$N" -q 2>/dev/null | tr '\r' '\n' \
    | grep 'requests per second' | tail -1 | sed 's/^[^:]*: \([0-9.]*\) requests.*/\1/'
}

# ---- 1. throughput -----------------------------------------------------------------------
for policy in always everysec; do
  start_redis "$policy" "$SCRATCH/redis-$policy"
  start_kv "$policy" "$SCRATCH/kv-$policy.img"
  declare -a rs=() rg=() ks=() kg=()
  for rep in $(seq 1 "$REPS"); do
    rs+=("$(rb "$REDIS_PORT" set)"); ks+=("$(rb "$KV_PORT" set)")
    rg+=("$(rb "$REDIS_PORT" get)"); kg+=("$(rb "$KV_PORT" get)")
  done
  result "kv_${policy}_set_redis" "$(median "${rs[@]}")"
  result "kv_${policy}_set_morgana" "$(median "${ks[@]}")"
  result "kv_${policy}_set_ratio" "$(ratio "$(median "${ks[@]}")" "$(median "${rs[@]}")")"
  result "kv_${policy}_get_redis" "$(median "${rg[@]}")"
  result "kv_${policy}_get_morgana" "$(median "${kg[@]}")"
  result "kv_${policy}_get_ratio" "$(ratio "$(median "${kg[@]}")" "$(median "${rg[@]}")")"
  result "kv_${policy}_morgana_commits" "$(redis-cli -p "$KV_PORT" info persistence | tr -d '\r' | sed -n 's/^commits://p')"
  stop "$KV_PID"
  # The same with O_DIRECT instead of the page cache (kv-server --sync direct).
  start_kv "$policy" "$SCRATCH/kv-$policy-direct.img" direct
  declare -a ds=() rs2=()
  for rep in $(seq 1 "$REPS"); do
    rs2+=("$(rb "$REDIS_PORT" set)"); ds+=("$(rb "$KV_PORT" set)")
  done
  result "kv_${policy}_set_morgana_direct" "$(median "${ds[@]}")"
  result "kv_${policy}_set_direct_ratio" "$(ratio "$(median "${ds[@]}")" "$(median "${rs2[@]}")")"
  stop "$REDIS_PID"; stop "$KV_PID"
done

# ---- 2. recovery of 1 M keys ---------------------------------------------------------------
# KEYS distinct 16-byte keys with 3-byte values (redis-benchmark's default value size).
python3 - "$KEYS" > "$SCRATCH/load.resp" <<'EOF'
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    k = b"key:%012d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$16\r\n" + k + b"\r\n$3\r\nxxx\r\n")
EOF
start_kv always "$SCRATCH/kv-recovery.img"
redis-cli -p "$KV_PORT" --pipe < "$SCRATCH/load.resp" >/dev/null
[ "$(redis-cli -p "$KV_PORT" dbsize)" = "$KEYS" ] || { echo "bench: load incomplete" >&2; exit 1; }
result kv_recovery_keys "$KEYS"
result kv_recovery_morgana_rss_kib "$(awk '/VmRSS/{print $2}' /proc/"$KV_PID"/status)"
stop "$KV_PID"
t0=$(now); start_kv always "$SCRATCH/kv-recovery.img"; t_kv=$(elapsed "$t0")
[ "$(redis-cli -p "$KV_PORT" dbsize)" = "$KEYS" ] || { echo "bench: keys lost in recovery" >&2; exit 1; }
result kv_recovery_morgana_s "$t_kv"
stop "$KV_PID"
start_redis always "$SCRATCH/redis-recovery"
redis-cli -p "$REDIS_PORT" --pipe < "$SCRATCH/load.resp" >/dev/null
result kv_recovery_redis_rss_kib "$(awk '/VmRSS/{print $2}' /proc/"$REDIS_PID"/status)"
stop "$REDIS_PID"
t0=$(now)
start_redis always "$SCRATCH/redis-recovery"
# Redis answers -LOADING while it replays its AOF.
for _ in $(seq 1 6000); do [ "$(redis-cli -p "$REDIS_PORT" dbsize 2>/dev/null)" = "$KEYS" ] && break; sleep 0.01; done
result kv_recovery_redis_s "$(elapsed "$t0")"
stop "$REDIS_PID"

# ---- 3. space after overwrites -------------------------------------------------------------
start_kv everysec "$SCRATCH/kv-space.img"
redis-benchmark -p "$KV_PORT" -t set -r 100000 -d 100 -P 16 -c 50 -n "$OVERWRITES" -q >/dev/null 2>&1
stop "$KV_PID"
"$INSPECT" "$SCRATCH/kv-space.img" > "$SCRATCH/inspect.txt"
result kv_space_overwrites "$OVERWRITES"
result kv_space_keys "$(sed -n 's/^keys=//p' "$SCRATCH/inspect.txt")"
result kv_space_live_bytes "$(sed -n 's/^live_bytes=//p' "$SCRATCH/inspect.txt")"
result kv_space_used_bytes "$(sed -n 's/^used_bytes=//p' "$SCRATCH/inspect.txt")"
result kv_space_amplification "$(sed -n 's/^space_amplification=//p' "$SCRATCH/inspect.txt")"
start_redis everysec "$SCRATCH/redis-space"
redis-benchmark -p "$REDIS_PORT" -t set -r 100000 -d 100 -P 16 -c 50 -n "$OVERWRITES" -q >/dev/null 2>&1
info=$(redis-cli -p "$REDIS_PORT" info persistence | tr -d '\r')
cur=$(echo "$info" | sed -n 's/^aof_current_size://p'); base=$(echo "$info" | sed -n 's/^aof_base_size://p')
result kv_space_redis_aof_bytes "$cur"
result kv_space_redis_aof_growth "$(ratio "$cur" "${base:-0}")"
stop "$REDIS_PID"
result kv_bench_loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"

# ---- table -------------------------------------------------------------------------------
get() { sed -n "s/^$1=//p" "$BENCH_OUT" | tail -1; }
echo
printf '%-34s %14s %14s %8s\n' "figure" "morgana" "redis-server" "ratio"
for policy in always everysec; do
  for op in set get; do
    printf '%-34s %14s %14s %8s\n' "$op/s, P16 c50, $policy" \
      "$(get "kv_${policy}_${op}_morgana")" "$(get "kv_${policy}_${op}_redis")" "$(get "kv_${policy}_${op}_ratio")"
  done
  printf '%-34s %14s %14s %8s\n' "set/s, $policy, O_DIRECT" \
    "$(get "kv_${policy}_set_morgana_direct")" "" "$(get "kv_${policy}_set_direct_ratio")"
done
printf '%-34s %14s %14s\n' "recovery of $KEYS keys (s)" "$(get kv_recovery_morgana_s)" "$(get kv_recovery_redis_s)"
printf '%-34s %14s %14s\n' "RSS with $KEYS keys (KiB)" "$(get kv_recovery_morgana_rss_kib)" "$(get kv_recovery_redis_rss_kib)"
printf '%-34s %14s %14s\n' "space after $OVERWRITES overwrites" "$(get kv_space_amplification)x" "aof $(get kv_space_redis_aof_growth)x"
