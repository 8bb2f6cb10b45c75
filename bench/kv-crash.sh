#!/usr/bin/env bash
# Issue 13's crash test at full length: appliances/kv's PVH kernel under QEMU (TCG,
# virtio-blk) is killed with SIGKILL at pseudo-random moments (fixed seed) while a client
# pipelines numbered SETs and INCRs with `always` durability; after each reboot on the
# same disk every acknowledged write must be present byte for byte, nothing torn or
# invented, and the store must mount without salvage (tests/tests/kv.rs,
# `kernel_keeps_every_acknowledged_write_across_sigkill`; CI runs 5 cycles of it).
#
#   bench/kv-crash.sh [CYCLES]      # default 20
#
# Prints the cycles, the writes acknowledged and sent, the boot-to-PONG time of every
# boot, and the wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-20}
start=$(date +%s)
MORGANA_KV_CRASH_CYCLES=$CYCLES cargo test -p morgana-tests --test kv -- \
  kernel_keeps_every_acknowledged_write_across_sigkill --nocapture 2>&1 \
  | grep -E '^crash test:|^test |panicked|test result' 
end=$(date +%s)
echo "kv_crash_cycles=$CYCLES"
echo "kv_crash_wall_s=$((end - start))"
