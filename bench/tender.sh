#!/usr/bin/env bash
# morgana-tender with its test guest (tender/test-guest): start -> first output, exit
# latency, the cost of one call, memory, and summon latency (client SYN -> first response
# byte, every request summoning a stopped guest) against the same requests to a guest
# that stays up. Prints name=value lines (appended to $BENCH_RESULTS if set).
#
#   bench/tender.sh [REPS] [SUMMONS]      defaults: 20 starts, 100 summons (0: none)
#   KV_REQUESTS=N bench/tender.sh ...     kv: redis-benchmark SET and GET (N each, default
#                                         20000; 0: none) under the tender and QEMU TCG
#   SITE_REPS=N bench/tender.sh ...       static-website start -> first HTTP 200 under the
#                                         tender and under QEMU TCG, and the Linux guest's
#                                         (bench/linux-guest.sh) under the same QEMU, N runs
#                                         each (default 10),
#                                         then requests/s with wrk under each (WRK_SECONDS,
#                                         default 10; 0: none)
#
# Needs /dev/kvm; the summon and static-website figures need root (and udhcpd, qemu) (a network namespace and a tap of its own,
# deleted on exit), iproute2 and python3. Builds into $CARGO_TARGET_DIR (default
# target/h-bench).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"
REPS=${1:-20}
SUMMONS=${2:-100}

cd "$BENCH_ROOT"
export CARGO_TARGET_DIR=$BENCH_TARGET
cargo build -q --release -p morgana-tender
cargo build -q --release -p morgana-tender-test-guest --features kernel
TENDER=$BENCH_TARGET/release/morgana-tender
GUEST=$BENCH_TARGET/release/tender-test-guest

emit() { while IFS= read -r line; do result "${line%%=*}" "${line#*=}"; done; }

python3 "$HERE/lib/tender_bench.py" start "$TENDER" "$GUEST" "$REPS" | emit
python3 "$HERE/lib/tender_bench.py" exits "$TENDER" "$GUEST" 20000 | emit

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/tender.sh: summon figures skipped (needs root for a namespace and a tap)" >&2
  exit 0
fi
NS=mbench$$
TAP=mbt0
MAC=02:4d:42:00:00:02
cleanup() { ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" sh -c 'for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done 2>/dev/null || true'
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip tuntap add dev "$TAP" mode tap
ip netns exec "$NS" ip addr add 10.95.0.1/24 dev "$TAP"
ip netns exec "$NS" ip link set "$TAP" up
# The client knows the guest's MAC: its SYN is the packet that summons the guest.
ip netns exec "$NS" ip neigh replace 10.95.0.2 lladdr "$MAC" dev "$TAP" nud permanent
if [ "$SUMMONS" -gt 0 ]; then
  TAP=$TAP ip netns exec "$NS" python3 "$HERE/lib/tender_bench.py" summon "$TENDER" "$GUEST" 10.95.0.2 "$MAC" "$SUMMONS" | emit
fi

# ---- static-website: start -> first HTTP 200, the same image under the tender and QEMU TCG
# The PVH image QEMU boots (MORGANA_TARGET=xen) runs unchanged under the tender through
# its tender note. Both runs time from the moment the host starts the VMM to the first
# 200 answer to GET / (bench/lib/firstok.py: a new connection every 10 ms), with 32 MiB
# (the appliance's memory_mib) and DHCP: QEMU's slirp answers it inside QEMU, the tender's
# tap gets busybox's udhcpd in the namespace (its ARP probe cut to 1 ms; the lease stays
# the same MAC's). The client has a permanent neighbour entry for the guest, so no ARP
# retry delays the first SYN. The tender is started through `ip netns exec` (counted).
# Most of the tender's time is the DHCP exchange: udhcpd answers each of the guest's two
# messages about 25 ms after it (tcpdump on the tap), the guest its offer within 0.2 ms;
# `morgana: ready` comes about 1 ms after entry.
SITE_REPS=${SITE_REPS:-10}
if [ "$SITE_REPS" -gt 0 ]; then
  MORGANA_TARGET=xen cargo build -q --release -p static-website
  # The reference guest: Debian's kernel + busybox httpd (built once, cached).
  bash "$HERE/linux-guest.sh" build
  SITE_DIR=$(mktemp -d)
  SITE=$SITE_DIR/static-website.img
  cp "$BENCH_TARGET/release/static-website" "$SITE"
  STAP=mbt1
  SMAC=02:4d:42:00:01:02
  ip netns exec "$NS" ip tuntap add dev "$STAP" mode tap
  ip netns exec "$NS" ip addr add 10.94.0.1/24 dev "$STAP"
  ip netns exec "$NS" ip link set "$STAP" up
  ip netns exec "$NS" ip neigh replace 10.94.0.2 lladdr "$SMAC" dev "$STAP" nud permanent
  : > "$SITE_DIR/leases"
  printf 'start 10.94.0.2\nend 10.94.0.2\ninterface %s\nlease_file %s\npidfile %s\noption subnet 255.255.255.0\noption router 10.94.0.1\noption lease 3600\n' \
    "$STAP" "$SITE_DIR/leases" "$SITE_DIR/udhcpd.pid" > "$SITE_DIR/udhcpd.conf"
  ip netns exec "$NS" udhcpd -f -a 1 "$SITE_DIR/udhcpd.conf" >/dev/null 2>&1 &
  UDHCPD=$!
  trap 'kill $UDHCPD 2>/dev/null || true; rm -rf "$SITE_DIR"; cleanup' EXIT
  # The poller (python, ~0.2 s to start on a busy host) runs before the VMM starts: it is
  # given a start moment 0.7 s ahead, and the VMM is launched at that moment.
  soon() { awk -v n="$(now)" 'BEGIN{printf "%.6f", n+0.7}'; }
  sleep_until() { sleep "$(awk -v s="$1" -v n="$(now)" 'BEGIN{d=s-n; if (d<0) d=0; printf "%.3f", d}')"; }
  tender_ms=() qemu_ms=() linux_ms=()
  LINUX_TIMEOUT=${BENCH_LINUX_TIMEOUT:-180}
  # PORT START: `first200_s=S` once GET / answers 200, one curl at a time (each given
  # 2 s), 50 ms apart: the figure's resolution is about 0.1 s.
  linux_first200() {
    local code
    while awk -v s="$2" -v n="$(now)" -v l="$LINUX_TIMEOUT" 'BEGIN{exit !(n-s < l)}'; do
      code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null || true)
      if [ "$code" = 200 ]; then
        awk -v s="$2" -v n="$(now)" 'BEGIN{printf "first200_s=%.3f\n", n-s}'
        return
      fi
      sleep 0.05
    done
  }
  for i in $(seq 1 "$SITE_REPS"); do
    log=$SITE_DIR/tender-$i.log; s=$(soon)
    ip netns exec "$NS" python3 "$HERE/lib/firstok.py" "$s" "$log" "http://10.94.0.2:8080/" 30 0.5 >"$SITE_DIR/tl" &
    fp=$!
    sleep_until "$s"
    ip netns exec "$NS" "$TENDER" --tap "$STAP" --mac "$SMAC" --memory-mib 32 "$SITE" >"$log" 2>&1 &
    pid=$!
    wait "$fp" || true; tl=$(cat "$SITE_DIR/tl")
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    t=$(sed -n 's/^first200_s=//p' <<<"$tl")
    if [ -n "$t" ]; then tender_ms+=("$(awk -v t="$t" 'BEGIN{printf "%.1f", t*1000}')")
    else echo "bench/tender.sh: tender run $i got no 200: $(tail -3 "$log")" >&2; fi

    port=$(free_port); log=$SITE_DIR/qemu-$i.log; s=$(soon)
    python3 "$HERE/lib/firstok.py" "$s" "$log" "http://127.0.0.1:$port/" 30 0.5 >"$SITE_DIR/tl" &
    fp=$!
    sleep_until "$s"
    qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m 32M -kernel "$SITE" -serial "file:$log" \
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device "$QEMU_NIC" </dev/null >/dev/null 2>&1 &
    pid=$!
    wait "$fp" || true; tl=$(cat "$SITE_DIR/tl")
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    t=$(sed -n 's/^first200_s=//p' <<<"$tl")
    if [ -n "$t" ]; then qemu_ms+=("$(awk -v t="$t" 'BEGIN{printf "%.1f", t*1000}')")
    else echo "bench/tender.sh: QEMU run $i got no 200" >&2; fi

    # The Linux guest under the same QEMU flags (128 MiB: its kernel needs more than 32;
    # a static address, no DHCP; busybox httpd's GET /), started by linux-guest.sh boot
    # (a bash start, counted, as the tender's `ip netns exec` is). It needs 10-35 s under
    # TCG here (docs/benchmarks.md), longer on a loaded machine: BENCH_LINUX_TIMEOUT
    # (default 180 s, as bench/run.sh) bounds a run. Polled by linux_first200 (above),
    # not firstok.py: firstok's new connection every 10 ms, each abandoned after 0.5 s,
    # piles up thousands of connections in slirp in front of a guest that boots for a
    # minute, and its forking httpd then answered none of them in 180 s (one curl took
    # 31 s to get its 200 behind 6,495 of them, at load 18).
    port=$(free_port); log=$SITE_DIR/linux-$i.log; s=$(now)
    pid=$(bash "$HERE/linux-guest.sh" boot "$port" 128 "$log")
    tl=$(linux_first200 "$port" "$s")
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    t=$(sed -n 's/^first200_s=//p' <<<"$tl")
    if [ -n "$t" ]; then linux_ms+=("$(awk -v t="$t" 'BEGIN{printf "%.1f", t*1000}')")
    else echo "bench/tender.sh: Linux guest run $i got no 200" >&2; fi
  done
  read -r tmed tmin tmax tn <<<"$(stats "${tender_ms[@]}")"
  read -r qmed qmin qmax qn <<<"$(stats "${qemu_ms[@]}")"
  result site_tender_first200_ms_median "$tmed"
  result site_tender_first200_ms_min_max "$tmin/$tmax"
  result site_tender_runs "$tn"
  result site_qemu_tcg_first200_ms_median "$qmed"
  result site_qemu_tcg_first200_ms_min_max "$qmin/$qmax"
  result site_qemu_tcg_runs "$qn"
  result site_qemu_tcg_over_tender "$(ratio "$qmed" "$tmed")"
  read -r lmed lmin lmax ln <<<"$(stats "${linux_ms[@]}")"
  result linux_guest_qemu_tcg_first200_ms_median "$lmed"
  result linux_guest_qemu_tcg_first200_ms_min_max "$lmin/$lmax"
  result linux_guest_runs "$ln"
  result linux_guest_over_tender "$(ratio "$lmed" "$tmed")"

  # ---- static-website: request throughput, the same image under the tender and QEMU TCG
  # Both over the same tap in the namespace (QEMU's tap backend, not slirp: the network
  # path is the same kernel tap for both), a static address from the command line
  # (--ipv4, a boot-time key), one guest at a time; wrk from the namespace, keep-alive, 10
  # connections, WRK_SECONDS each (default 10) after the first 200.
  WRK_SECONDS=${WRK_SECONDS:-10}
  if [ "$WRK_SECONDS" -gt 0 ] && command -v wrk >/dev/null; then
    url=http://10.94.0.2:8080/
    wrk_rps() {
      local log=$1
      ip netns exec "$NS" python3 "$HERE/lib/firstok.py" "$(now)" "$log" "$url" 60 0.5 >/dev/null \
        || { echo "bench/tender.sh: no 200 for wrk: $(tail -3 "$log")" >&2; echo nan; return; }
      ip netns exec "$NS" wrk -t1 -c10 -d"${WRK_SECONDS}s" "$url" 2>&1 | awk '/^Requests\/sec/ {print $2}'
    }
    log=$SITE_DIR/tender-wrk.log
    ip netns exec "$NS" "$TENDER" --tap "$STAP" --mac "$SMAC" --memory-mib 32 "$SITE" --ipv4=10.94.0.2/24 >"$log" 2>&1 &
    pid=$!
    t_rps=$(wrk_rps "$log")
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    log=$SITE_DIR/qemu-wrk.log
    ip netns exec "$NS" qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m 32M -kernel "$SITE" -append "--ipv4=10.94.0.2/24" \
      -serial "file:$log" -netdev "tap,id=n0,ifname=$STAP,script=no,downscript=no" \
      -device "$QEMU_NIC,mac=$SMAC" </dev/null >/dev/null 2>&1 &
    pid=$!
    q_rps=$(wrk_rps "$log")
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    result site_tender_requests_per_s "${t_rps:-nan}"
    result site_qemu_tcg_requests_per_s "${q_rps:-nan}"
    result site_tender_over_qemu_tcg_throughput "$(ratio "${t_rps:-nan}" "${q_rps:-nan}")"
  fi
fi

# ---- kv: redis-benchmark under the tender and under QEMU TCG, the same PVH image
# kv's image (MORGANA_TARGET=xen), a fresh sparse 256 MiB disk image for each, its address
# from udhcpd on a tap of its own (the same MAC both ways: the same lease). QEMU uses the
# same tap (its tap backend, virtio-net) and the same kind of disk (a raw file,
# virtio-blk, cache=writeback: a flush is the host's fdatasync, as under the tender). kv's
# durability is Always: every SET is acknowledged after a flush. redis-benchmark from the
# namespace, 10 connections, no pipelining, KV_REQUESTS of each.
KV_REQUESTS=${KV_REQUESTS:-20000}
if [ "$KV_REQUESTS" -gt 0 ] && command -v redis-benchmark >/dev/null && command -v udhcpd >/dev/null; then
  MORGANA_TARGET=xen cargo build -q --release -p kv
  KV_DIR=$(mktemp -d)
  cp "$BENCH_TARGET/release/kv" "$KV_DIR/kv.elf"
  KTAP=mbt2
  KMAC=02:4d:42:00:02:02
  ip netns exec "$NS" ip tuntap add dev "$KTAP" mode tap
  ip netns exec "$NS" ip addr add 10.93.0.1/24 dev "$KTAP"
  ip netns exec "$NS" ip link set "$KTAP" up
  ip netns exec "$NS" ip neigh replace 10.93.0.2 lladdr "$KMAC" dev "$KTAP" nud permanent
  : > "$KV_DIR/leases"
  printf 'start 10.93.0.2\nend 10.93.0.2\ninterface %s\nlease_file %s\npidfile %s\noption subnet 255.255.255.0\noption router 10.93.0.1\noption lease 3600\n' \
    "$KTAP" "$KV_DIR/leases" "$KV_DIR/udhcpd.pid" > "$KV_DIR/udhcpd.conf"
  ip netns exec "$NS" udhcpd -f -a 1 "$KV_DIR/udhcpd.conf" >/dev/null 2>&1 &
  KUDHCPD=$!
  trap 'kill ${UDHCPD:-} $KUDHCPD 2>/dev/null || true; rm -rf "${SITE_DIR:-}" "$KV_DIR"; cleanup' EXIT
  kv_rps() { # LOG -> "SET GET" requests/s, once the guest answers PING
    local log=$1 t0=$SECONDS
    until timeout 2 ip netns exec "$NS" redis-cli -h 10.93.0.2 -p 6379 PING 2>/dev/null | grep -q PONG; do
      if [ $((SECONDS - t0)) -gt 120 ]; then
        echo "bench/tender.sh: kv never answered: $(tail -3 "$log")" >&2; echo "nan nan"; return
      fi
      sleep 0.2
    done
    ip netns exec "$NS" redis-benchmark -h 10.93.0.2 -p 6379 -t set,get -n "$KV_REQUESTS" -c 10 -q 2>/dev/null \
      | tr '\r' '\n' | awk '/^SET:/ {s=$2} /^GET:/ {g=$2} END {print (s ? s : "nan"), (g ? g : "nan")}'
  }
  truncate -s 256M "$KV_DIR/kv-tender.img"
  log=$KV_DIR/tender-kv.log
  ip netns exec "$NS" "$TENDER" --tap "$KTAP" --mac "$KMAC" --memory-mib 128 --disk "$KV_DIR/kv-tender.img" "$KV_DIR/kv.elf" >"$log" 2>&1 &
  pid=$!
  read -r t_set t_get <<<"$(kv_rps "$log")"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  truncate -s 256M "$KV_DIR/kv-qemu.img"
  log=$KV_DIR/qemu-kv.log
  ip netns exec "$NS" qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m 128M -kernel "$KV_DIR/kv.elf" -serial "file:$log" \
    -netdev "tap,id=n0,ifname=$KTAP,script=no,downscript=no" -device "$QEMU_NIC,mac=$KMAC" \
    -drive "file=$KV_DIR/kv-qemu.img,format=raw,if=none,id=d0,cache=writeback" -device virtio-blk-pci,drive=d0 \
    </dev/null >/dev/null 2>&1 &
  pid=$!
  read -r q_set q_get <<<"$(kv_rps "$log")"
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  result kv_tender_set_per_s "$t_set"
  result kv_tender_get_per_s "$t_get"
  result kv_qemu_tcg_set_per_s "$q_set"
  result kv_qemu_tcg_get_per_s "$q_get"
  result kv_tender_over_qemu_tcg_set "$(ratio "$t_set" "$q_set")"
  result kv_tender_over_qemu_tcg_get "$(ratio "$t_get" "$q_get")"
fi
