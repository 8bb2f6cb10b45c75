#!/usr/bin/env bash
# Density: how many static-website PVH instances this machine holds booted and answering
# at once under QEMU TCG, and what each costs in memory.
#
#   bench/density.sh [MAX] [IMAGE]      (default MAX 128; the image is built with
#                                         MORGANA_TARGET=xen into $CARGO_TARGET_DIR)
#
# Starts instances in batches of $BATCH (default 4), each with the generated file's flags
# (-M pc, qboot, -nodefaults, virtio-net-pci without option ROM, $BENCH_MEM MiB, default
# 32 = the appliance's memory_mib) and its own forwarded port; after each batch waits
# until every new instance answers HTTP 200 and checks that every earlier one still does.
# Stops at MAX, at the first instance that does not answer within $BENCH_BOOT_TIMEOUT
# (default 60 s), at the first earlier instance that stops answering, or when the host's
# MemAvailable would drop below $BENCH_RESERVE_MIB (default 4096). Prints name=value lines:
#   instances              held booted and answering at once
#   stop_reason            why it stopped
#   qemu_rss_mib_median    QEMU's resident memory per instance (guest pages it touched
#                          included), min-max
#   qemu_pss_mib_median    the same with shared pages (QEMU's libraries) split among them
#   guest_mib              the memory each guest was given (-m)
#   host_used_mib_per_instance  MemAvailable's drop over the run, per instance (a quiet
#                          machine only: other programs move it too)
#   load_before/load_after /proc/loadavg, so a run on a busy machine says so
# Run it on a quiet machine: the figure is the host's, and other work shrinks it.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
MAX=${1:-128}
IMAGE=${2:-}
MEM=${BENCH_MEM:-32}
BATCH=${BATCH:-4}
BOOT_TIMEOUT=${BENCH_BOOT_TIMEOUT:-60}
RESERVE=${BENCH_RESERVE_MIB:-4096}
if [ -z "$IMAGE" ]; then
  (cd "$BENCH_ROOT" && MORGANA_TARGET=xen CARGO_TARGET_DIR="$BENCH_TARGET" \
    cargo build --release --quiet -p static-website)
  IMAGE=$BENCH_TARGET/release/static-website
fi
pids=()
ports=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

avail_mib() { awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo; }
rss_mib() { awk '/^VmRSS:/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo nan; }
# Proportional set size: shared pages (QEMU's libraries) split among the instances.
pss_mib() { awk '/^Pss:/ {printf "%.1f", $2/1024}' "/proc/$1/smaps_rollup" 2>/dev/null || echo nan; }
answers() { curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/" 2>/dev/null | grep -q '^200$'; }

echo "cores=$(nproc) mem_total_mib=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)"
echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
avail0=$(avail_mib)
reason="reached MAX=$MAX"
while [ ${#pids[@]} -lt "$MAX" ]; do
  # Memory guard: the next batch could take up to its guests' memory plus QEMU's own.
  if [ $(( $(avail_mib) - BATCH * (MEM + 64) )) -lt "$RESERVE" ]; then
    reason="host MemAvailable would drop below ${RESERVE} MiB"
    break
  fi
  new=()
  for ((b = 0; b < BATCH && ${#pids[@]} < MAX; b++)); do
    port=$(free_port)
    qemu-system-x86_64 -accel tcg -display none -no-reboot -nodefaults -no-user-config \
      -bios qboot.rom -M pc -m "$MEM" -serial none \
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" \
      -device virtio-net-pci,netdev=n0,romfile= -kernel "$IMAGE" </dev/null >/dev/null 2>&1 &
    pids+=($!)
    ports+=("$port")
    new+=("$port")
  done
  deadline=$(( $(date +%s) + BOOT_TIMEOUT ))
  for port in "${new[@]}"; do
    until answers "$port"; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        reason="instance on port $port did not answer within ${BOOT_TIMEOUT}s"
        break 3
      fi
      sleep 0.2
    done
  done
  for port in "${ports[@]}"; do
    if ! answers "$port"; then
      reason="earlier instance on port $port stopped answering"
      break 2
    fi
  done
  echo "instances=${#pids[@]} avail_mib=$(avail_mib) load=$(cut -d' ' -f1 /proc/loadavg)"
done
# Count what answers now (a failed batch leaves some booting).
held=0
for port in "${ports[@]}"; do answers "$port" && held=$((held + 1)); done
rss=()
pss=()
for p in "${pids[@]}"; do rss+=("$(rss_mib "$p")"); pss+=("$(pss_mib "$p")"); done
read -r m lo hi _ <<<"$(stats "${rss[@]}")"
read -r pm plo phi _ <<<"$(stats "${pss[@]}")"
echo "instances=$held"
echo "started=${#pids[@]}"
echo "stop_reason=$reason"
echo "qemu_rss_mib_median=$m ($lo-$hi)"
echo "qemu_pss_mib_median=$pm ($plo-$phi)"
echo "guest_mib=$MEM"
# Only meaningful on a quiet machine (other programs move MemAvailable too).
[ "${#pids[@]}" -gt 0 ] && echo "host_used_mib_per_instance=$(awk -v a="$avail0" -v b="$(avail_mib)" -v n="${#pids[@]}" 'BEGIN{printf "%.1f", (a-b)/n}')"
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
