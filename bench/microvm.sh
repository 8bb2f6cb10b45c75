#!/usr/bin/env bash
# Boot-to-first-200 of the static-website PVH image under QEMU's -M microvm
# (virtio-mmio, Firecracker's device model) against the default machines (pc and q35,
# virtio-net-pci), in one run, interleaved, with the generated file's flags
# (qboot, -nodefaults, no NIC option ROM).
#
#   bench/microvm.sh [REPS] [IMAGE]     (default 7 repetitions; the image is built with
#                                        MORGANA_TARGET=xen into $CARGO_TARGET_DIR)
#
# Prints name=value lines (seconds from QEMU's start to the first HTTP 200, medians with
# min-max) and the ratios to pc. microvm runs three ways: with ACPI and its default
# firmware (bios-microvm.bin, a SeaBIOS; devices in the DSDT, interrupts), with ACPI and
# -bios qboot.rom (qboot installs QEMU's ACPI tables too: same devices, faster firmware),
# and with acpi=off (qboot; devices on the kernel command line, polled: no I/O APIC is
# described).
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
REPS=${1:-7}
IMAGE=${2:-}
MEM=${BENCH_MEM:-32}
if [ -z "$IMAGE" ]; then
  (cd "$BENCH_ROOT" && MORGANA_TARGET=xen CARGO_TARGET_DIR="$BENCH_TARGET" \
    cargo build --release --quiet -p static-website)
  IMAGE=$BENCH_TARGET/release/static-website
fi
scratch=$(mktemp -d)
qpid=""
cleanup() { [ -n "$qpid" ] && kill "$qpid" 2>/dev/null; rm -rf "$scratch"; }
trap cleanup EXIT

echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
# boot MACHINE-ARGS... -> seconds to first 200 (or "nan")
boot() {
  local port log start t
  port=$(free_port)
  log=$scratch/serial.log
  : > "$log"
  start=$(now)
  qemu-system-x86_64 -accel tcg -display none -no-reboot -nodefaults -no-user-config -m "$MEM" \
    -serial "file:$log" "$@" -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" \
    -kernel "$IMAGE" </dev/null >/dev/null 2>&1 &
  qpid=$!
  t=$(python3 "$BENCH_ROOT/bench/lib/firstok.py" "$start" "$log" "http://127.0.0.1:$port/" 60 \
      "${BENCH_POLL_TIMEOUT:-0.3}" | sed -n 's/^first200_s=//p')
  kill "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null || true
  qpid=""
  echo "${t:-nan}"
}

declare -a pc q35 mvm mvm_qboot mvm_noacpi
for ((i = 1; i <= REPS; i++)); do
  pc+=("$(boot -M pc -bios qboot.rom -device virtio-net-pci,netdev=n0,romfile=)")
  q35+=("$(boot -M q35 -bios qboot.rom -device virtio-net-pci,netdev=n0,romfile=)")
  mvm+=("$(boot -M microvm -global virtio-mmio.force-legacy=false -device virtio-net-device,netdev=n0)")
  mvm_qboot+=("$(boot -M microvm -bios qboot.rom -global virtio-mmio.force-legacy=false -device virtio-net-device,netdev=n0)")
  mvm_noacpi+=("$(boot -M microvm,acpi=off -global virtio-mmio.force-legacy=false -device virtio-net-device,netdev=n0)")
  echo "rep=$i pc=${pc[-1]} q35=${q35[-1]} microvm=${mvm[-1]} microvm_qboot=${mvm_qboot[-1]} microvm_acpi_off=${mvm_noacpi[-1]}"
done
read -r m_pc lo_pc hi_pc _ <<<"$(stats "${pc[@]}")"
read -r m_q35 lo_q35 hi_q35 _ <<<"$(stats "${q35[@]}")"
read -r m_mvm lo_mvm hi_mvm _ <<<"$(stats "${mvm[@]}")"
read -r m_qb lo_qb hi_qb _ <<<"$(stats "${mvm_qboot[@]}")"
read -r m_off lo_off hi_off _ <<<"$(stats "${mvm_noacpi[@]}")"
echo "first200_pc_s=$m_pc ($lo_pc-$hi_pc)"
echo "first200_q35_s=$m_q35 ($lo_q35-$hi_q35)"
echo "first200_microvm_s=$m_mvm ($lo_mvm-$hi_mvm)"
echo "first200_microvm_qboot_s=$m_qb ($lo_qb-$hi_qb)"
echo "first200_microvm_acpi_off_s=$m_off ($lo_off-$hi_off)"
echo "ratio_microvm_to_pc=$(ratio "$m_mvm" "$m_pc")"
echo "ratio_microvm_qboot_to_pc=$(ratio "$m_qb" "$m_pc")"
echo "ratio_microvm_acpi_off_to_pc=$(ratio "$m_off" "$m_pc")"
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)"
