#!/usr/bin/env bash
# The Redis-protocol server (components/resp over components/store, the Unix process
# `kv-server`) against redis-server 7 (Debian), in one run:
#
#   bench/kv.sh [--quick|--smoke] [unix] [kernel] [size]      (every part by default)
#
# unix: the Unix process kv-server,
# 1. throughput: redis-benchmark -t set,get -P 16 -c 50 against both, with the same
#    durability: redis-server --appendonly yes --appendfsync always vs kv-server
#    --durability always, then everysec vs everysec; alternating runs, medians, ratios
#    (goal >= 1.0 for GET and SET with each policy);
# 2. recovery: 1 M keys loaded, the server killed with SIGKILL, the time until it serves
#    again (and redis-server reloading the same keys from its AOF);
# 3. space: N overwrites (10 M in full mode) of 100 000 keys, then the bytes the store's
#    log occupies over its live data (and Redis's AOF growth over its last rewrite).
# kernel: the kv PVH image (appliances/kv, and a copy built with `durability: EverySec`)
#    under QEMU with the arguments of its generated kv.qemu (TCG, virtio-net user network
#    with a forwarded port, a virtio-blk disk on a fresh image file), against Debian's
#    redis-server in a Linux guest under the same QEMU (Debian's kernel, lib/guest-initrd.sh:
#    the same -m, NIC and -drive/-device, its init making ext4 on the disk and mounting it,
#    redis-server --appendonly yes --appendfsync always, then everysec); one guest at a time,
#    each QEMU with lib/listen-backlog.c preloaded (its port forward listens with backlog 1),
#    redis-benchmark -t set,get -P 16 -c 50 from the host, ratios (goal >= 1.5). The image
#    is the one for QEMU/KVM only (MORGANA_TARGET=qemu: virtio drivers only), as deployed
#    on QEMU.
# size: the kv kernel's loaded bytes (`size -A`: .note*, .text, .xen_hypercall, .rodata,
#    .data, as docs/storage.md counts them) for each kernel target: xen (every hypervisor),
#    qemu (QEMU/KVM only), xen-only; ratios to the goal, 300 KiB (307,200 B).
#
# Prints name=value lines as it goes (also appended to $BENCH_OUT, default
# target/h-bench/bench-results.txt) and a table at the end. Client, servers and the disk
# images share this machine: absolute figures move with its load, the ratios less so.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
export CARGO_TARGET_DIR=$BENCH_TARGET

MODE=full
PARTS=()
for a in "$@"; do
  case "$a" in
    --quick) MODE=quick ;; --smoke) MODE=smoke ;;
    unix|kernel|size) PARTS+=("$a") ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
[ ${#PARTS[@]} -eq 0 ] && PARTS=(unix kernel size)
want() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }
# KN: requests per redis-benchmark run against a guest (both serve about 10 000 a second
# under TCG); KNA for SET with `always`, which the Linux guest serves at about 100 a second
# (an ext4 journal commit, two flushes of the virtio disk, per fsync).
case $MODE in
  full)  N=2000000; REPS=3; KEYS=1000000; OVERWRITES=10000000; KN=100000; KNA=10000 ;;
  quick) N=500000;  REPS=1; KEYS=1000000; OVERWRITES=2000000;  KN=30000;  KNA=3000 ;;
  smoke) N=50000;   REPS=1; KEYS=20000;   OVERWRITES=100000;   KN=5000;   KNA=1000 ;;
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

# rb PORT TEST -> requests per second (the last figure redis-benchmark prints), or nan with
# what it said instead on stderr (a run is bounded: 10 minutes)
rb() {
  local out fig
  out=$(timeout 600 redis-benchmark -p "$1" -t "$2" -P 16 -c 50 -n "$N" -q 2>&1 | tr '\r' '\n' || true)
  fig=$(printf '%s\n' "$out" | grep -a 'requests per second' | tail -1 | sed 's/^[^:]*: \([0-9.]*\) requests.*/\1/' || true)
  if [ -n "$fig" ]; then echo "$fig"; return 0; fi
  echo "bench: redis-benchmark -t $2 on port $1 gave no figure: $(printf '%s\n' "$out" | grep -av '^ *$' | tail -2 | tr '\n' ' ')" >&2
  echo nan
}

# get_result NAME -> the last value recorded for NAME
get_result() { sed -n "s/^$1=//p" "$BENCH_OUT" | tail -1; }

if want unix; then
echo "bench: building kv-server and inspect (release)" >&2
cargo build --release --quiet -p morgana-resp --features example --example kv-server \
  --manifest-path "$BENCH_ROOT/Cargo.toml" >&2
cargo build --release --quiet -p morgana-store --example inspect \
  --manifest-path "$BENCH_ROOT/Cargo.toml" >&2

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
fi # unix

# ---- size: the kv kernel's loaded bytes per kernel target --------------------------------
SIZE_GOAL=307200
if want size; then
for tgt in xen xen-only qemu; do
  echo "bench: building the kv kernel (release, MORGANA_TARGET=$tgt)" >&2
  (cd "$BENCH_ROOT" && MORGANA_TARGET=$tgt cargo build --release --quiet -p kv >&2)
  t=${tgt//-/_}
  loaded=$(size -A "$CARGO_TARGET_DIR/release/kv" | awk '$1 ~ /^\.(note|text$|xen_hypercall$|rodata$|data$)/ {s+=$2} END{print s+0}')
  result "kv_size_${t}_loaded_bytes" "$loaded"
  result "kv_size_${t}_over_goal" "$(awk -v a="$loaded" -v b="$SIZE_GOAL" 'BEGIN{printf "%.3f", a/b}')"
done
fi # size

# ---- kernel: the PVH image under QEMU against redis-server in a Linux guest --------------
if want kernel; then
. "$HERE/lib/scratch.sh"
. "$HERE/lib/guest-initrd.sh"
for t in qemu-system-x86_64:qemu-system-x86 cpio:cpio mke2fs:e2fsprogs; do
  command -v "${t%%:*}" >/dev/null || apt_need "${t#*:}"
done
echo "bench: building the kv kernel, and a copy with durability: EverySec (release, MORGANA_TARGET=qemu)" >&2
(cd "$BENCH_ROOT" && MORGANA_TARGET=qemu cargo build --release --quiet -p kv >&2)
EVERYSEC=$SCRATCH/kv-everysec
mkdir -p "$EVERYSEC"
cp -r "$BENCH_ROOT/appliances/kv/src" "$BENCH_ROOT/appliances/kv/build.rs" "$EVERYSEC/"
sed -e 's/durability: Always/durability: EverySec/' -e 's/name: "kv"/name: "kv-everysec"/' \
  "$BENCH_ROOT/appliances/kv/appliance.ron" > "$EVERYSEC/appliance.ron"
grep -q 'durability: EverySec' "$EVERYSEC/appliance.ron" || { echo "bench: appliances/kv is not durability: Always" >&2; exit 1; }
scratch_manifest "$BENCH_ROOT/appliances/kv" "$EVERYSEC" kv-everysec
(cd "$EVERYSEC" && MORGANA_TARGET=qemu cargo build --release --quiet >&2)
SPEC=$CARGO_TARGET_DIR/release/kv.qemu
declare -A KIMG=([always]=$CARGO_TARGET_DIR/release/kv [everysec]=$CARGO_TARGET_DIR/release/kv-everysec)

# spec_args PORT DISK SERIAL -> kv.qemu's arguments, one per line: TCG only (this host's
# nested KVM cannot run a PVH guest), the forwarded port, disk image and serial console ours.
spec_args() {
  local port=$1 disk=$2 serial=$3 prev= a
  while IFS= read -r a; do
    case "$a" in ''|'#'*) continue ;; esac
    if [ "$prev" = -accel ] && [ "$a" = kvm ]; then prev=; continue; fi
    [ "$a" = -accel ] && { prev=$a; continue; }
    [ "$prev" = -accel ] && echo -accel
    [ "$prev" = -serial ] && a=file:$serial
    a=${a//hostfwd=tcp:127.0.0.1:6379-/hostfwd=tcp:127.0.0.1:$port-}
    a=${a//file=kv.img,/file=$disk,}
    echo "$a"; prev=$a
  done < "$SPEC"
}
mapfile -t probe < <(spec_args 1 probe.img probe.log)
printf '%s\n' "${probe[@]}" | grep -q '^file=probe.img,' || { echo "bench: $SPEC attaches no kv.img:" >&2; cat "$SPEC" >&2; exit 1; }
printf '%s\n' "${probe[@]}" | grep -q 'hostfwd=tcp:127.0.0.1:1-' || { echo "bench: $SPEC forwards no 6379" >&2; exit 1; }
# The Linux guest gets the same memory and the same disk arguments.
MEM=$(printf '%s\n' "${probe[@]}" | sed -n '/^-m$/{n;p}')
DISK_SIZE=$(sed -n 's/^# disk \([0-9]*\) rw kv.img$/\1/p' "$SPEC")
# disk_args DISK -> the -drive/-device pairs of kv.qemu for DISK
disk_args() { spec_args 1 "$1" /dev/null | awk '/^-drive$|^-device$/ {f=$0; next} f!="" {if (f=="-drive" || $0 ~ /^virtio-blk/) print f "\n" $0; f=""}'; }

echo "bench: the Linux guest's initramfs (redis-server, mke2fs and their libraries)" >&2
ROOT=$SCRATCH/linux-redis-root INITRD=$SCRATCH/linux-redis-initrd.gz
guest_root "$ROOT"
# (cp -L: Debian's redis-server is a link to redis-check-rdb; the name run picks the mode.)
guest_add_program "$ROOT" "$(command -v redis-server)" "$(command -v mke2fs)"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$ROOT/etc/"
guest_init "$ROOT" <<INIT
for m in $GUEST_DISK_MODULES; do insmod /lib/modules/\$m.ko; done
policy=\$(sed -n 's/.*kvpolicy=\([a-z]*\).*/\1/p' /proc/cmdline)
$(command -v mke2fs) -q -F -t ext4 /dev/vda && mkdir -p /data && mount -t ext4 /dev/vda /data || echo DISK-FAILED
/usr/bin/redis-server --bind 0.0.0.0 --port 6379 --protected-mode no --save '' \
  --appendonly yes --appendfsync "\$policy" --dir /data --daemonize yes --logfile /data/redis.log
echo READY \$policy
while true; do sleep 1000; done
INIT
guest_pack "$ROOT" "$INITRD"

# wait_pong PORT TRIES -> 0 once PING answers PONG (each try bounded: a guest still booting
# holds QEMU's forwarded connection open)
wait_pong() {
  for _ in $(seq 1 "$2"); do
    [ "$(timeout 3 redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0; sleep 0.5
  done
  return 1
}
# The host's count of handshakes dropped for a full accept queue (all listeners). QEMU's
# port forward listens with a backlog of 1, so redis-benchmark's 50 connects at once
# overflow it and those clients retry after 1 s, 3 s, ... (their data segments back off
# too: a connection can wait ~50 s): a stall of the host's side, not of either guest.
# Both guests' QEMU therefore run with lib/listen-backlog.c preloaded (backlog >= 128).
gcc -shared -fPIC -O2 -o "$SCRATCH/listen-backlog.so" "$HERE/lib/listen-backlog.c" -ldl
listen_overflows() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1 } else print $c }' /proc/net/netstat; }
# guest_bench WHO POLICY PID PORT: REPS runs of set then get -> results, then stops PID
guest_bench() {
  local who=$1 policy=$2 pid=$3 port=$4 s=() g=() ns=$KN lo0
  [ "$policy" = always ] && ns=$KNA
  wait_pong "$port" 600 || { echo "bench: the $who guest ($policy) does not answer PING (log: $SCRATCH/$who-$policy.log)" >&2; tail -20 "$SCRATCH/$who-$policy.log" >&2; exit 1; }
  lo0=$(listen_overflows)
  for _ in $(seq 1 "$REPS"); do
    s+=("$(N=$ns rb "$port" set)"); g+=("$(N=$KN rb "$port" get)")
  done
  result "kv_kernel_${policy}_host_listen_overflows_$who" "$(( $(listen_overflows) - lo0 ))"
  result "kv_kernel_${policy}_set_$who" "$(median "${s[@]}")"
  result "kv_kernel_${policy}_get_$who" "$(median "${g[@]}")"
  stop "$pid"
}
for policy in always everysec; do
  port=$(free_port); disk=$SCRATCH/kernel-kv-$policy.img
  rm -f "$disk"; truncate -s "${DISK_SIZE:-256}M" "$disk"
  mapfile -t args < <(spec_args "$port" "$disk" "$SCRATCH/morgana-$policy.log")
  echo "bench: kernel, $policy: the kv PVH image (${KIMG[$policy]})" >&2
  LD_PRELOAD=$SCRATCH/listen-backlog.so qemu-system-x86_64 "${args[@]}" -kernel "${KIMG[$policy]}" </dev/null >/dev/null 2>&1 &
  pid=$!; PIDS+=("$pid")
  guest_bench morgana "$policy" "$pid" "$port"

  port=$(free_port); disk=$SCRATCH/kernel-linux-$policy.img
  rm -f "$disk"; truncate -s "${DISK_SIZE:-256}M" "$disk"
  mapfile -t dargs < <(disk_args "$disk")
  echo "bench: kernel, $policy: redis-server in a Linux guest" >&2
  LD_PRELOAD=$SCRATCH/listen-backlog.so qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m "$MEM" -serial "file:$SCRATCH/linux-$policy.log" \
    -kernel "$GUEST_KERNEL" -initrd "$INITRD" -append "console=ttyS0 quiet kvpolicy=$policy" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:6379" -device "$QEMU_NIC" "${dargs[@]}" \
    </dev/null >/dev/null 2>&1 &
  pid=$!; PIDS+=("$pid")
  guest_bench linux "$policy" "$pid" "$port"
  grep -q "READY $policy" "$SCRATCH/linux-$policy.log" && ! grep -q DISK-FAILED "$SCRATCH/linux-$policy.log" \
    || { echo "bench: the Linux guest did not mount its disk (log: $SCRATCH/linux-$policy.log)" >&2; exit 1; }
  for op in set get; do
    result "kv_kernel_${policy}_${op}_ratio" \
      "$(ratio "$(get_result "kv_kernel_${policy}_${op}_morgana")" "$(get_result "kv_kernel_${policy}_${op}_linux")")"
  done
done
fi # kernel

result kv_bench_loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"

# ---- table -------------------------------------------------------------------------------
get() { get_result "$1"; }
echo
printf '%-34s %14s %14s %8s\n' "figure" "morgana" "redis-server" "ratio"
if want unix; then
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
fi
if want kernel; then
  for policy in always everysec; do
    for op in set get; do
      printf '%-34s %14s %14s %8s\n' "$op/s, P16 c50, $policy, QEMU" \
        "$(get "kv_kernel_${policy}_${op}_morgana")" "$(get "kv_kernel_${policy}_${op}_linux")" "$(get "kv_kernel_${policy}_${op}_ratio")"
    done
  done
fi
if want size; then
  printf '%-34s %14s %14s %8s\n' "kernel image" "loaded bytes" "goal" "ratio"
  for t in xen qemu xen_only; do
    printf '%-34s %14s %14s %8s\n' "kv, target ${t//_/-}" "$(get "kv_size_${t}_loaded_bytes")" "$SIZE_GOAL" "$(get "kv_size_${t}_over_goal")"
  done
fi
