#!/usr/bin/env bash
# UDP echo packets per second on the Unix target (host sockets), Morgana against three
# references in the same run: a plain C echo (bench/lib/udpecho.c: recvfrom, sendto),
# a Python one, and socat (UDP4-LISTEN ... PIPE). The load is bench/lib/udpflood.c: one
# client keeping WINDOW datagrams of SIZE bytes in flight on 127.0.0.1 for SECONDS.
# Servers alternate, RUNS times each; medians are printed with the ratios.
#
#   bench/udp-echo.sh [RUNS] [SIZE] [WINDOW] [SECONDS]     (default 3 64 32 5)
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

RUNS=${1:-3}
SIZE=${2:-64}
WINDOW=${3:-32}
SECONDS_EACH=${4:-5}
WORK=$BENCH_TARGET/udp-echo
mkdir -p "$WORK"
apt_need gcc socat

gcc -O2 -o "$WORK/udpflood" "$BENCH_ROOT/bench/lib/udpflood.c"
gcc -O2 -o "$WORK/udpecho" "$BENCH_ROOT/bench/lib/udpecho.c"
(cd "$BENCH_ROOT" && CARGO_TARGET_DIR=$BENCH_TARGET cargo build --release --quiet \
  -p morgana-udp-echo --example udp-echo --features example)
MORGANA=$BENCH_TARGET/release/examples/udp-echo
cat > "$WORK/echo.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(65536)
    s.sendto(data, peer)
PY

free_udp_port() { python3 -c 'import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# measure NAME -> echoes per second
measure() {
  local name=$1 port pid out
  port=$(free_udp_port)
  case $name in
    morgana) "$MORGANA" --address "127.0.0.1:$port" >/dev/null 2>&1 & ;;
    c)       "$WORK/udpecho" "$port" & ;;
    python)  python3 "$WORK/echo.py" "$port" & ;;
    socat)   socat -b 65536 "UDP4-LISTEN:$port,bind=127.0.0.1,reuseaddr" PIPE & ;;
  esac
  pid=$!
  sleep 0.3
  out=$("$WORK/udpflood" 127.0.0.1 "$port" "$SIZE" "$WINDOW" "$SECONDS_EACH")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "${out%% *}"
}

declare -A all
for r in $(seq 1 "$RUNS"); do
  for name in morgana c python socat; do
    v=$(measure $name)
    all[$name]="${all[$name]:-} $v"
    echo "udp-echo: run $r $name $v/s" >&2
  done
done
m=$(median ${all[morgana]})
for name in morgana c python socat; do
  read -r med min max _ <<<"$(stats ${all[$name]})"
  result "udp_echo_${name}_pps" "$med"
  result "udp_echo_${name}_range_pps" "$min-$max"
done
for name in c python socat; do
  result "udp_echo_morgana_over_${name}" "$(ratio "$m" "$(median ${all[$name]})")"
done
echo "udp echo, $SIZE B, window $WINDOW, ${SECONDS_EACH}s x $RUNS: morgana $m/s, C $(median ${all[c]})/s, python $(median ${all[python]})/s, socat $(median ${all[socat]})/s"
