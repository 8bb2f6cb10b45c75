#!/usr/bin/env bash
# morgana-tender with its test guest (tender/test-guest): start -> first output, exit
# latency, the cost of one call, memory, and summon latency (client SYN -> first response
# byte, every request summoning a stopped guest) against the same requests to a guest
# that stays up. Prints name=value lines (appended to $BENCH_RESULTS if set).
#
#   bench/tender.sh [REPS] [SUMMONS]      defaults: 20 starts, 100 summons
#
# Needs /dev/kvm; the summon figure needs root (a network namespace and a tap of its own,
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
TAP=$TAP ip netns exec "$NS" python3 "$HERE/lib/tender_bench.py" summon "$TENDER" "$GUEST" 10.95.0.2 "$MAC" "$SUMMONS" | emit
