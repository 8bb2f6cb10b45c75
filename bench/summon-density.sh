#!/usr/bin/env bash
# Density of summoned appliances: N static-website appliances, each held by its own
# `morgana-tender --summon` on its own tap (all taps on one bridge in a network namespace,
# one subnet), first all stopped, then all summoned by one request each and left up
# (idle), then every one asked again. Memory per appliance in both states and the CPU the
# idle ones burn, against one Linux guest (bench/linux-guest.sh: Debian's kernel and
# busybox httpd under QEMU TCG, 128 MiB) booted and idle in the same run.
#
#   bench/summon-density.sh [N]        default 100
#
# Prints name=value lines (appended to $BENCH_RESULTS if set):
#   held / summoned / answered_again      appliances holding a tap / answering their first
#                                         request byte for byte / answering again with all up
#   stopped_rss_kib_per_appliance         tender RSS while the appliance is stopped (the
#                                         tender, its prepared VM's written pages)
#   up_rss_kib_per_appliance              tender RSS with the appliance up and idle (guest
#                                         pages it touched included; 32 MiB given)
#   *_pss_kib_per_appliance               the same with shared pages (the tender's code)
#                                         split among the processes
#   host_used_mib_per_appliance_*         MemAvailable's drop per appliance (kernel memory for
#                                         KVM's VMs included; other work on the host moves it)
#   idle_cpu_percent_all                  CPU of all N idle tenders over 10 s, % of one core
#                                         (the idle guests wake now and then: with 1000 up,
#                                         the 2-core machine's load average passes 100)
#   linux_guest_rss_kib, linux_guest_idle_cpu_percent   the reference
# Needs root, /dev/kvm, iproute2, curl, python3, qemu; refuses to start when MemAvailable
# would drop below $BENCH_RESERVE_MIB (default 4096) at 16 MiB per appliance.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/lib/common.sh"
N=${1:-100}
RESERVE=${BENCH_RESERVE_MIB:-4096}
if [ "$N" -lt 1 ] || [ "$N" -gt 60000 ]; then
  echo "bench/summon-density.sh: N must be 1..60000" >&2; exit 2
fi
if [ "$(id -u)" -ne 0 ] || ! [ -w /dev/kvm ]; then
  echo "bench/summon-density.sh: needs root and /dev/kvm" >&2; exit 1
fi
avail_mib() { awk '/^MemAvailable:/ {printf "%d", $2/1024}' /proc/meminfo; }
if [ $(( $(avail_mib) - N * 16 )) -lt "$RESERVE" ]; then
  echo "bench/summon-density.sh: $N appliances could leave less than $RESERVE MiB available" >&2; exit 1
fi

cd "$BENCH_ROOT"
export CARGO_TARGET_DIR=$BENCH_TARGET
MORGANA_TARGET=xen cargo build -q --release -p static-website
cargo build -q --release -p morgana-tender
"$HERE/linux-guest.sh" build
TENDER=$BENCH_TARGET/release/morgana-tender
WORK=$(mktemp -d)
SITE=$WORK/static-website.img
cp "$BENCH_TARGET/release/static-website" "$SITE"
INDEX=$BENCH_ROOT/appliances/static-website/htdocs/index.html
NS=mdens$$
PIDS=()
LPID=
cleanup() {
  [ -n "$LPID" ] && kill "$LPID" 2>/dev/null || true
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
result density_load_before "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"

# Appliance i: tap sd<i>, MAC 02:4d:44:00:<hi>:<lo>, address 10.91.<i/250>.<i%250+2>/16.
addr() { echo "10.91.$(( $1 / 250 )).$(( $1 % 250 + 2 ))"; }
mac() { printf '02:4d:44:00:%02x:%02x' $(( $1 / 256 )) $(( $1 % 256 )); }
ip netns add "$NS"
ip netns exec "$NS" sh -c 'for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done 2>/dev/null || true'
{
  echo "link set lo up"
  echo "link add br0 type bridge"
  echo "addr add 10.91.255.1/16 dev br0"
  echo "link set br0 up"
  for i in $(seq 0 $(( N - 1 ))); do
    echo "tuntap add dev sd$i mode tap"
    echo "link set sd$i master br0"
    echo "link set sd$i up"
  done
} > "$WORK/links"
ip -n "$NS" -batch "$WORK/links"

before=$(avail_mib)
for i in $(seq 0 $(( N - 1 ))); do
  ip netns exec "$NS" "$TENDER" --summon --idle-ms 3600000 --tap "sd$i" --mac "$(mac "$i")" \
    --memory-mib 32 "$SITE" "--ipv4=$(addr "$i")/16" >/dev/null 2>"$WORK/t$i.log" &
  PIDS+=("$!")
done
# Every tender holds its tap (bounded: 2 s per appliance at most, at least 60 s).
deadline=$(( $(date +%s) + (N * 2 > 60 ? N * 2 : 60) ))
held=0
while :; do
  held=$( (grep -l "the guest boots on the first frame" "$WORK"/t*.log 2>/dev/null || true) | wc -l)
  [ "$held" -ge "$N" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then break; fi
  sleep 0.2
done
result density_held "$held"
sleep 1

# Memory of the tenders: RSS and PSS summed, per appliance.
mem_per() { # FIELD (Rss|Pss) -> KiB per tender
  local total=0 v p
  for p in "${PIDS[@]}"; do
    v=$(awk -v f="$1:" '$1 == f {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo $(( total / ${#PIDS[@]} ))
}
cpu_ticks() { # total utime+stime of the tenders
  local total=0 p
  for p in "${PIDS[@]}"; do
    total=$(( total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}
result density_stopped_rss_kib_per_appliance "$(mem_per Rss)"
result density_stopped_pss_kib_per_appliance "$(mem_per Pss)"
stopped=$(avail_mib)
result density_host_used_mib_per_appliance_stopped "$(awk -v a="$before" -v b="$stopped" -v n="$N" 'BEGIN{printf "%.2f", (a-b)/n}')"

# Summon each with one request; they stay up (idle time one hour).
get() { # I -> 0 when the page came back byte for byte
  ip netns exec "$NS" curl -s --max-time 10 -o "$WORK/body" "http://$(addr "$1"):8080/" && cmp -s "$WORK/body" "$INDEX"
}
summoned=0
for i in $(seq 0 $(( N - 1 ))); do
  if get "$i"; then summoned=$(( summoned + 1 )); else echo "bench/summon-density.sh: appliance $i did not answer: $(tail -2 "$WORK/t$i.log")" >&2; fi
done
result density_summoned "$summoned"
sleep 2
up_rss=$(mem_per Rss); up_pss=$(mem_per Pss)
result density_up_rss_kib_per_appliance "$up_rss"
result density_up_pss_kib_per_appliance "$up_pss"
up=$(avail_mib)
result density_host_used_mib_per_appliance_up "$(awk -v a="$before" -v b="$up" -v n="$N" 'BEGIN{printf "%.2f", (a-b)/n}')"
hz=$(getconf CLK_TCK)
c0=$(cpu_ticks); sleep 10; c1=$(cpu_ticks)
result density_idle_cpu_percent_all "$(awk -v d=$(( c1 - c0 )) -v hz="$hz" 'BEGIN{printf "%.2f", d/hz/10*100}')"
again=0
for i in $(seq 0 $(( N - 1 ))); do get "$i" && again=$(( again + 1 )); done
result density_answered_again "$again"

# The appliances are stopped first: N idle guests load the machine, and the reference's
# boot under TCG would take minutes beside them.
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()

# Reference: one Linux guest, booted and idle.
port=$(free_port)
lpid=$("$HERE/linux-guest.sh" boot "$port" 128 "$WORK/linux.log")
LPID=$lpid
if wait_http "http://127.0.0.1:$port/index.html" 600 0.5 1; then
  sleep 2
  lrss=$(awk '$1 == "Rss:" {print $2}' "/proc/$lpid/smaps_rollup")
  result linux_guest_rss_kib "$lrss"
  result linux_guest_rss_over_up_appliance_rss "$(ratio "$lrss" "$up_rss")"
  result linux_guest_rss_over_up_appliance_pss "$(ratio "$lrss" "$up_pss")"
  l0=$(awk '{print $14 + $15}' "/proc/$lpid/stat"); sleep 10; l1=$(awk '{print $14 + $15}' "/proc/$lpid/stat")
  result linux_guest_idle_cpu_percent "$(awk -v d=$(( l1 - l0 )) -v hz="$hz" 'BEGIN{printf "%.2f", d/hz/10*100}')"
else
  echo "bench/summon-density.sh: the Linux guest never answered" >&2
fi
result density_load_after "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
