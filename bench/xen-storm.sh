#!/usr/bin/env bash
# Stress of the paths behind static-website's rare triple faults on Xen (issue 17,
# docs/xen-under-qemu.md "Triple faults"), in one Xen boot under QEMU
# (tests/xen/run-guest.sh): first STORMS guests of morgana-pvh's `hello` example with
# `storm=N` (N wake-ups from 20-microsecond sleeps, a xenstore read every eighth: the
# idle step and the waits for xenstored, as fast as the machine allows), then GUESTS
# static-website domains from its generated .xl, alternately
#   a: SEQ sequential and CONC concurrent connections (30 open at a time), the debug
#      key (`xl sysrq d`), then the harness's `xl shutdown`;
#   b: 300 sequential connections, then `xl shutdown` while 30 connections are open.
#
#   bench/xen-storm.sh [--storms S] [--wakeups N] [--guests G] [--seq N] [--conc N]
#
# Defaults: 2 storms of 20000 wake-ups, 6 static-website guests, 1500 + 300
# connections. Prints one line per guest (how it ended; a triple fault shows as
# reason reboot, and the harness then dumps the dead vCPU: docs/xen-under-qemu.md
# "Reading a dead guest") and the totals; the whole serial log is kept in
# target/xen-storm/run.log.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STORMS=2 WAKEUPS=20000 GUESTS=6 SEQ=1500 CONC=300
while [ $# -gt 0 ]; do
  case "$1" in
    --storms) STORMS=$2; shift 2 ;;
    --wakeups) WAKEUPS=$2; shift 2 ;;
    --guests) GUESTS=$2; shift 2 ;;
    --seq) SEQ=$2; shift 2 ;;
    --conc) CONC=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "xen-storm.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

OUT=$ROOT/target/xen-storm
mkdir -p "$OUT"
export CARGO_TARGET_DIR=$ROOT/target/e2e-xen
(cd "$ROOT" && cargo build --release --quiet -p morgana-pvh --features example-kernels --example hello)
(cd "$ROOT" && MORGANA_TARGET=xen cargo build --release --quiet -p static-website)
HELLO=$CARGO_TARGET_DIR/release/examples/hello
SITE=$CARGO_TARGET_DIR/release/static-website
BYTES=$(stat -c %s "$ROOT/appliances/static-website/htdocs/index.html")

cat > "$OUT/a.check" <<EOF
wait_console 'static-website: serving' 120 || exit 1
ip=\$(sed -n 's/.*ipv4 \([0-9.]*\)\/[0-9]* leased from DHCP.*/\1/p' "\$CONSOLE" | tail -n 1)
soak morgana \$ip 8080 $SEQ 30 $CONC $BYTES
xl sysrq \$GUEST d
sleep 2
EOF
cat > "$OUT/b.check" <<EOF
wait_console 'static-website: serving' 120 || exit 1
ip=\$(sed -n 's/.*ipv4 \([0-9.]*\)\/[0-9]* leased from DHCP.*/\1/p' "\$CONSOLE" | tail -n 1)
soak morgana \$ip 8080 300 30 0 $BYTES
# The harness's xl shutdown follows while these 30 connections are open.
(timeout 20 soak-client -t 5000 -b $BYTES \$ip 8080 conc 30 600 > /dev/null 2>&1 &)
sleep 2
EOF

args=()
for _ in $(seq 1 "$STORMS"); do args+=("$HELLO" "storm=$WAKEUPS"); done
for i in $(seq 0 $((GUESTS - 1))); do
  check=a.check
  [ $((i % 2)) = 1 ] && check=b.check
  args+=(--xl "$SITE.xl" --check "$OUT/$check" "$SITE" '')
done
log=$OUT/run.log
start=$(date +%s)
MORGANA_XEN_TIMEOUT=${MORGANA_XEN_TIMEOUT:-7200} bash "$ROOT/tests/xen/run-guest.sh" "${args[@]}" > "$log" 2>&1 || true
log_text=$(tr -d '\r' < "$log")

declare -A ends=()
seq_ok=0 seq_failed=0 conc_ok=0 conc_failed=0 wakeups=0
total=$((STORMS + GUESTS))
for n in $(seq 0 $((total - 1))); do
  reason=$(sed -n "s/.*===MORGANA-XEN-SHUTDOWN-$n=\([a-z_0-9-]*\)===.*/\1/p" <<<"$log_text" | head -n 1)
  reason=${reason:-missing}
  ends[$reason]=$(( ${ends[$reason]:-0} + 1 ))
  console=$(sed -n "/===MORGANA-XEN-CONSOLE-BEGIN-$n===/,/===MORGANA-XEN-CONSOLE-END-$n===/p" <<<"$log_text")
  if [ "$n" -lt "$STORMS" ]; then
    line=$(grep -o 'storm: .*' <<<"$console" | head -n 1 || true)
    [ -n "$line" ] && wakeups=$((wakeups + WAKEUPS))
    echo "guest $n (hello storm=$WAKEUPS): ${line:-no storm line}; ended: $reason"
  else
    check=$(sed -n "/===MORGANA-XEN-CHECK-BEGIN-$n===/,/===MORGANA-XEN-CHECK-END-$n=/p" <<<"$log_text")
    s=""
    for phase in seq conc; do
      l=$(grep "^SOAK $phase " <<<"$check" | head -n 1 || true)
      [ -n "$l" ] || continue
      ok=$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$l")
      failed=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$l")
      if [ "$phase" = seq ]; then
        seq_ok=$((seq_ok + ok)) seq_failed=$((seq_failed + failed))
      else
        conc_ok=$((conc_ok + ok)) conc_failed=$((conc_failed + failed))
      fi
      s="$s $phase $ok ok $failed failed;"
    done
    echo "guest $n (static-website):${s:- no soak figures;} ended: $reason"
  fi
done
echo "totals: $total guests in $(( $(date +%s) - start )) s; ended:$(for r in "${!ends[@]}"; do printf ' %s %s' "$r" "${ends[$r]}"; done)"
echo "totals: storms $wakeups wake-ups; static-website sequential $seq_ok ok $seq_failed failed, concurrent $conc_ok ok $conc_failed failed"
if grep -q 'Triple fault' <<<"$log_text"; then
  echo "Xen's log: $(grep -c 'Triple fault' <<<"$log_text") triple fault(s); see $log (MORGANA-XEN-CONTEXT sections)"
fi
