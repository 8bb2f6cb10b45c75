#!/usr/bin/env bash
# Summon: the static-website kernel image held by `morgana-tender --summon`, booted by the
# request that needs it. Figures: curl's time_connect / time_starttransfer / time_total
# when every request finds the guest stopped, the same curl to a guest that stays up, and
# a cold start of the same image (VMM launched -> first HTTP 200 to GET /) under the
# tender and under QEMU TCG (`qemu -kernel`), all in the same run. Prints name=value lines
# (appended to $BENCH_RESULTS if set).
#
#   bench/summon.sh [SUMMONS] [COLD_REPS]      defaults: 30 summons, 5 cold starts each
#
# Needs root (a network namespace and a tap of its own, deleted on exit), /dev/kvm,
# iproute2, curl, python3, qemu (scripts/setup.sh). Builds into $CARGO_TARGET_DIR
# (default target/h-bench). Every guest has a static address (`--ipv4` at boot: no DHCP
# exchange in any figure); the client has a permanent neighbour entry for the summoned
# guest, so its SYN is the frame that wakes it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"
SUMMONS=${1:-30}
COLD_REPS=${2:-5}

if [ "$(id -u)" -ne 0 ]; then
  echo "bench/summon.sh: needs root (a network namespace and a tap)" >&2
  exit 1
fi
if ! [ -r /dev/kvm ] || ! [ -w /dev/kvm ]; then
  echo "bench/summon.sh: needs /dev/kvm (readable and writable)" >&2
  exit 1
fi

cd "$BENCH_ROOT"
export CARGO_TARGET_DIR=$BENCH_TARGET
MORGANA_TARGET=xen cargo build -q --release -p static-website
cargo build -q --release -p morgana-tender
TENDER=$BENCH_TARGET/release/morgana-tender
WORK=$(mktemp -d)
SITE=$WORK/static-website.img
cp "$BENCH_TARGET/release/static-website" "$SITE"
INDEX=$BENCH_ROOT/appliances/static-website/htdocs/index.html

NS=msummon$$
TAP=msu0
MAC=02:4d:53:00:00:02
IP=10.92.0.2
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
ip netns exec "$NS" sh -c 'for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done 2>/dev/null || true'
ip netns exec "$NS" ip link set lo up
ip netns exec "$NS" ip tuntap add dev "$TAP" mode tap
ip netns exec "$NS" ip addr add 10.92.0.1/24 dev "$TAP"
ip netns exec "$NS" ip link set "$TAP" up
ip netns exec "$NS" ip neigh replace "$IP" lladdr "$MAC" dev "$TAP" nud permanent

emit() { while IFS= read -r line; do result "${line%%=*}" "${line#*=}"; done; }
result site_summon_load_average "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
ip netns exec "$NS" python3 "$HERE/lib/summon_bench.py" "$TENDER" "$SITE" "$IP" "$MAC" "$TAP" "$SUMMONS" "$INDEX" | tee "$WORK/summon.txt" | emit
smed=$(sed -n 's/^site_summon_curl_total_median_ms=//p' "$WORK/summon.txt")

# ---- cold starts: VMM launched -> first 200 (bench/lib/firstok.py: a new connection
# every 10 ms), the tender (tap, started through `ip netns exec`, counted) and QEMU TCG
# (user network, port forward; the guest's static address is slirp's 10.0.2.15),
# interleaved, 32 MiB each. The poller starts 0.7 s ahead of the VMM.
soon() { awk -v n="$(now)" 'BEGIN{printf "%.6f", n+0.7}'; }
sleep_until() { sleep "$(awk -v s="$1" -v n="$(now)" 'BEGIN{d=s-n; if (d<0) d=0; printf "%.3f", d}')"; }
tender_ms=() qemu_ms=()
for i in $(seq 1 "$COLD_REPS"); do
  log=$WORK/tender-$i.log; s=$(soon)
  ip netns exec "$NS" python3 "$HERE/lib/firstok.py" "$s" "$log" "http://$IP:8080/" 30 0.5 >"$WORK/tl" &
  fp=$!
  sleep_until "$s"
  ip netns exec "$NS" "$TENDER" --tap "$TAP" --mac "$MAC" --memory-mib 32 "$SITE" "--ipv4=$IP/24" >"$log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait "$fp" || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  t=$(sed -n 's/^first200_s=//p' "$WORK/tl")
  if [ -n "$t" ]; then tender_ms+=("$(awk -v t="$t" 'BEGIN{printf "%.1f", t*1000}')")
  else echo "bench/summon.sh: tender cold start $i got no 200: $(tail -3 "$log")" >&2; fi

  port=$(free_port); log=$WORK/qemu-$i.log; s=$(soon)
  python3 "$HERE/lib/firstok.py" "$s" "$log" "http://127.0.0.1:$port/" 30 0.5 >"$WORK/tl" &
  fp=$!
  sleep_until "$s"
  qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m 32M -kernel "$SITE" -serial "file:$log" \
    -append "--ipv4=10.0.2.15/24 --ipv4-gateway=10.0.2.2" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device "$QEMU_NIC" </dev/null >/dev/null 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait "$fp" || true
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  t=$(sed -n 's/^first200_s=//p' "$WORK/tl")
  if [ -n "$t" ]; then qemu_ms+=("$(awk -v t="$t" 'BEGIN{printf "%.1f", t*1000}')")
  else echo "bench/summon.sh: QEMU cold start $i got no 200: $(tail -3 "$log")" >&2; fi
done
read -r tmed tmin tmax tn <<<"$(stats "${tender_ms[@]}")"
read -r qmed qmin qmax qn <<<"$(stats "${qemu_ms[@]}")"
result site_cold_tender_first200_ms_median "$tmed"
result site_cold_tender_first200_ms_min_max "$tmin/$tmax"
result site_cold_tender_runs "$tn"
result site_cold_qemu_tcg_first200_ms_median "$qmed"
result site_cold_qemu_tcg_first200_ms_min_max "$qmin/$qmax"
result site_cold_qemu_tcg_runs "$qn"
result site_cold_qemu_tcg_over_tender "$(ratio "$qmed" "$tmed")"
# A stopped appliance answering its first request against QEMU starting it cold.
result site_cold_qemu_tcg_over_summon "$(ratio "$qmed" "$smed")"
result site_summon_load_average_after "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
