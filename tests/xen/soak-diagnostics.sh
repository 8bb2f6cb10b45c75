#!/bin/sh
# What the soak records at the first failed connection (soak-client's -x hook, in dom0;
# see the `soak` helper in dom0-init.sh): dom0's view of the guest — its neighbour
# entry, a ping, the vif's counters, netback's ring state from debugfs, the backend's
# xenstore directory, event channel interrupt counts, dom0's kernel log — then the
# guest's own report on its console (static-website: the debug key, `xl sysrq GUEST d`;
# the Linux control: a `diag` line on its console).
# Environment: SOAK_KIND (morgana | linux), SOAK_ADDR, GUEST, DOMID, CONSOLE.
echo "=== soak diagnostics: $SOAK_KIND guest $GUEST (domain $DOMID, $SOAK_ADDR) at $(cut -d ' ' -f 1 /proc/uptime) s of dom0 uptime"
echo "--- dom0 neighbour entry:"
ip neigh show 2>&1 | grep -F "$SOAK_ADDR "
grep -F "$SOAK_ADDR " /proc/net/arp
echo "--- ping:"
ping -c 2 -W 1 "$SOAK_ADDR" 2>&1 | tail -n 2
for v in /sys/class/net/vif$DOMID.*; do
  [ -d "$v" ] || continue
  printf -- '--- %s: operstate %s carrier %s' "${v##*/}" "$(cat $v/operstate)" "$(cat $v/carrier 2>&1)"
  for f in rx_packets rx_dropped tx_packets tx_dropped tx_errors; do
    printf ' %s %s' $f "$(cat $v/statistics/$f)"
  done
  echo
  for q in /sys/kernel/debug/xen-netback/${v##*/}/io_ring_q*; do
    [ -f "$q" ] && { echo "--- netback $q:"; cat "$q"; }
  done
done
echo "--- xenstore backend/vif/$DOMID:"
xenstore-ls -f /local/domain/0/backend/vif/$DOMID 2>&1 | grep -vE 'feature-|multi-queue'
echo "--- event channel interrupts of vif$DOMID:"
grep "vif$DOMID" /proc/interrupts
echo "--- dom0 kernel log, last 15 lines:"
dmesg 2>&1 | tail -n 15
case "$SOAK_KIND" in
  morgana)
    xl sysrq "$GUEST" d 2>&1 ;;
  linux)
    tty=$(xenstore-read /local/domain/$DOMID/console/tty 2>/dev/null)
    if [ -n "$tty" ] && [ -e "$tty" ]; then echo diag > "$tty"; else echo "no console tty for $GUEST"; fi ;;
esac
sleep 3
echo "--- $GUEST's console, last 30 lines:"
tail -n 30 "$CONSOLE"
echo "=== end of soak diagnostics"
