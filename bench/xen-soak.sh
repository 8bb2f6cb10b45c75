#!/usr/bin/env bash
# The full Xen soak of issue 17: static-website, started from its generated .xl, and the
# Linux control guest (Debian's kernel as a PV domU, xen-netfront, busybox httpd serving
# the same site) take the same load from dom0 in each of several Xen boots under QEMU
# (tests/xen/run-guest.sh): sequential HTTP/1.0 connections, then concurrent
# ones, each checked for status 200 and the whole page (tests/xen/soak-client.c). At the
# first failure of each phase the harness records dom0's view and the guest's own
# report (tests/xen/soak-diagnostics.sh). The CI test (`cargo test -p morgana-tests
# --test xen`) runs a short soak of one boot; this is the long one.
#
#   bench/xen-soak.sh [--boots N] [--seq N] [--conc N] [--width W] [--minutes M]
#
# Defaults: 20 boots; per guest and boot 2000 sequential connections, then 600 more with
# 30 open at any time (30: below the direct stack's default backlog of 32, beyond which
# a burst is refused with a reset by design). The guests swap order every boot
# (static-website first in odd boots). Each boot's serial output is kept in
# target/xen-soak/boot-N.log. --minutes M starts no boot after M minutes (on a shared
# machine): the totals then say how many boots ran.
#
# Prints one line per boot and the totals: connections and failures on each side, how
# each guest ended (a guest that died shows as a reason other than poweroff, and Xen's
# log names a triple fault), and what static-website's netfront watchdog counted
# (checks, lost notifications recovered, backend kicks, receive buffers re-posted). A boot whose harness failed
# (dom0 or Xen died, xl lost a guest: docs/xen-under-qemu.md) is an infrastructure
# failure: it is printed, counted and run again; a guest's failure never is.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BOOTS=20 SEQ=2000 CONC=600 WIDTH=30 MINUTES=0
while [ $# -gt 0 ]; do
  case "$1" in
    --boots) BOOTS=$2; shift 2 ;;
    --seq) SEQ=$2; shift 2 ;;
    --conc) CONC=$2; shift 2 ;;
    --width) WIDTH=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "xen-soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

OUT=$ROOT/target/xen-soak
mkdir -p "$OUT"
export CARGO_TARGET_DIR=$ROOT/target/e2e-xen
(cd "$ROOT" && MORGANA_TARGET=xen cargo build --release --quiet -p static-website)
IMAGE=$CARGO_TARGET_DIR/release/static-website
HTDOCS=$ROOT/appliances/static-website/htdocs
BYTES=$(stat -c %s "$HTDOCS/index.html")
LINUX_IP=10.0.0.3

cat > "$OUT/morgana.check" <<EOF
wait_console 'static-website: serving' 120 || exit 1
ip=\$(sed -n 's/.*ipv4 \([0-9.]*\)\/[0-9]* leased from DHCP.*/\1/p' "\$CONSOLE" | tail -n 1)
soak morgana \$ip 8080 $SEQ $WIDTH $CONC $BYTES
xl sysrq \$GUEST d
sleep 3
EOF
cat > "$OUT/linux.check" <<EOF
wait_console 'linux-control: serving' 240 || exit 1
soak linux $LINUX_IP 8080 $SEQ $WIDTH $CONC $BYTES
tty=\$(xenstore-read /local/domain/\$DOMID/console/tty)
[ -n "\$tty" ] && echo diag > "\$tty"
sleep 3
EOF

# field LINE NAME: the value of NAME=... in LINE (0 when absent).
field() { sed -n "s/.* $2=\([0-9]*\).*/\1/p" <<<"$1" | head -n 1 | grep . || echo 0; }

# totals[side.what]
declare -A T=()
add() { T[$1]=$(( ${T[$1]:-0} + $2 )); }

# side_result LOG N SIDE: adds guest N's soak figures (its check output) to the totals
# and sets SUMMARY to a summary. Not run in a subshell, so that the totals stay.
side_result() {
  local log=$1 n=$2 side=$3 out s="" reason
  out=$(tr -d '\r' < "$log" | sed -n "/===MORGANA-XEN-CHECK-BEGIN-$n===/,/===MORGANA-XEN-CHECK-END-$n=/p")
  for phase in seq conc; do
    local line ok failed
    line=$(grep "^SOAK $phase " <<<"$out" || true)
    if [ -z "$line" ]; then
      s+=" $phase: no result"
      add "$side.missing" 1
      continue
    fi
    ok=$(field "$line" ok)
    failed=$(field "$line" failed)
    add "$side.$phase.ok" "$ok"
    add "$side.$phase.failed" "$failed"
    s+=" $phase $ok ok $failed failed"
  done
  if grep -q '^STALLED' <<<"$out"; then s+=" STALLED"; add "$side.stalled" 1; fi
  # A triple fault leaves the guest with reason reboot and dom0 prints its vCPU's state
  # (xenctx, tests/xen/dom0-init.sh): the instruction it died at, named.
  local rip
  rip=$(tr -d '\r' < "$log" | sed -n "/===MORGANA-XEN-CONTEXT-BEGIN-$n===/,/===MORGANA-XEN-CONTEXT-END-$n===/s/^rip: *//p" | head -n 1)
  [ -z "$rip" ] || s+=" died at rip $rip (xenctx in the log)"
  # How the guest ended: after its check the harness asks it to power off.
  reason=$(tr -d '\r' < "$log" | sed -n "s/^===MORGANA-XEN-SHUTDOWN-$n=\(.*\)===$/\1/p")
  s+=" ended: ${reason:-unknown}"
  [ "$reason" = poweroff ] || add "$side.died" 1
  SUMMARY=$s
}

boot=1
infra=0
began=$(date +%s)
stopped=""
while [ "$boot" -le "$BOOTS" ]; do
  if [ "$MINUTES" -gt 0 ] && [ $(( $(date +%s) - began )) -ge $(( MINUTES * 60 )) ]; then
    stopped=" (stopped by --minutes $MINUTES after $((boot - 1)) of $BOOTS boots)"
    break
  fi
  log=$OUT/boot-$boot.log
  if [ $((boot % 2)) = 1 ]; then
    order=(morgana linux)
  else
    order=(linux morgana)
  fi
  args=()
  for g in "${order[@]}"; do
    case $g in
      morgana) args+=(--xl "$IMAGE.xl" --check "$OUT/morgana.check" "$IMAGE" '') ;;
      linux) args+=(--check "$OUT/linux.check" --www "$HTDOCS" @linux-control
                    "console=hvc0 quiet soak.ip=$LINUX_IP/24") ;;
    esac
  done
  start=$(date +%s)
  MORGANA_XEN_TIMEOUT=${MORGANA_XEN_TIMEOUT:-7200} bash "$ROOT/tests/xen/run-guest.sh" "${args[@]}" > "$log" 2>&1 || true
  secs=$(( $(date +%s) - start ))
  if ! grep -aq '===MORGANA-XEN-DONE===' "$log" || grep -aq '===MORGANA-XEN-SHUTDOWN-[0-9]*=gone===' "$log"; then
    infra=$((infra + 1))
    echo "boot $boot: infrastructure failure after $secs s (no DONE marker or a guest xl lost; $log); booting again"
    mv "$log" "$OUT/boot-$boot.infra-$infra.log"
    continue
  fi
  line="boot $boot ($secs s):"
  for i in 0 1; do
    side=${order[$i]}
    side_result "$log" "$i" "$side"
    line+=" | $side$SUMMARY"
  done
  if grep -aq 'Triple fault' "$log"; then
    line+=" | Xen: $(grep -a 'Triple fault' "$log" | tr -d '\r' | head -n 1)"
    add triple_faults 1
  fi
  # static-website's netfront figures, from the report its debug key printed (none if
  # it died first).
  wd=$(tr -d '\r' < "$log" | grep -a 'netfront diagnostics: rx .* watchdog' | tail -n 1 || true)
  for k in checks lost_events backend_kicks reposted; do
    case $k in
      checks) v=$(sed -n 's/.*watchdog \([0-9]*\) checks.*/\1/p' <<<"$wd") ;;
      lost_events) v=$(sed -n 's/.* \([0-9]*\) lost events.*/\1/p' <<<"$wd") ;;
      backend_kicks) v=$(sed -n 's/.* \([0-9]*\) backend kicks.*/\1/p' <<<"$wd") ;;
      reposted) v=$(sed -n 's/.* \([0-9]*\) buffers reposted.*/\1/p' <<<"$wd") ;;
    esac
    add "watchdog.$k" "${v:-0}"
  done
  line+=" | watchdog: $(sed -n 's/.*watchdog \(.*\)/\1/p' <<<"$wd")"
  echo "$line"
  boot=$((boot + 1))
done

echo
echo "xen soak: $((boot - 1)) boots$stopped in $(( ($(date +%s) - began) / 60 )) min, per guest and boot $SEQ sequential + $CONC concurrent ($WIDTH at a time) connections; $infra infrastructure failures (re-run)"
for side in morgana linux; do
  name=$([ $side = morgana ] && echo static-website || echo "Linux control")
  echo "  $name: sequential ${T[$side.seq.ok]:-0} ok ${T[$side.seq.failed]:-0} failed; concurrent ${T[$side.conc.ok]:-0} ok ${T[$side.conc.failed]:-0} failed; stalls ${T[$side.stalled]:-0}; phases without a result ${T[$side.missing]:-0}; boots it did not end by powering off ${T[$side.died]:-0}"
done
echo "  guests that triple-faulted (Xen's log): ${T[triple_faults]:-0}"
echo "  static-website's netfront watchdog: ${T[watchdog.checks]:-0} checks, ${T[watchdog.lost_events]:-0} lost notifications recovered, ${T[watchdog.backend_kicks]:-0} backend kicks, ${T[watchdog.reposted]:-0} receive buffers re-posted"
