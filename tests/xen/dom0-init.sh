#!/bin/sh
# dom0's /init in the Xen harness (tests/xen/run-guest.sh): starts the Xen daemons and
# the network (bridge xenbr0 10.0.0.1/24 with a DHCP server), runs each /guest/N/kernel
# (N = 0, 1, ...) as a PVH guest in turn, prints its console log and shutdown reason
# between markers, then powers the machine off.
#
# /guest/N/ holds `kernel` (or `kernel-path`, naming one elsewhere: the Linux control
# guest boots /linux/vmlinuz) and `cmdline`, and optionally `config.xl` (an xl config
# used instead of the built-in one; name, kernel, ramdisk, cmdline and on_* are
# overridden on xl's command line), `ramdisk`, `check` (a script sourced in a
# subshell once the guest is created, with the helpers below; its output goes between
# CHECK markers, then the harness shuts the guest down), and `disk` ("MIB PATH": a disk
# image created at PATH, relative to /, sparse, if it does not exist yet; an existing
# one, such as an earlier guest's, is used as it is; with `disk-new` as well, an
# existing one is removed first, so the guest gets a blank disk).
export PATH=/bin:/sbin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xenstored /var/run/xen /var/log/xen/console /var/lib/xenstored /var/lib/xen
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc llc stp bridge xen-netback loop xen-blkback; do
  if [ -f /modules/$m.ko ]; then
    insmod /modules/$m.ko || echo "dom0-init: insmod $m failed"
  fi
done
mount -t xenfs xenfs /proc/xen
# netback's ring state (soak diagnostics).
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
XENSTORED_ROOTDIR=/var/lib/xenstored xenstored --pid-file=/run/xenstored.pid
i=0
while [ ! -S /run/xenstored/socket ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
xen-init-dom0 >/dev/null 2>&1
xenconsoled --log=guest --log-dir=/var/log/xen/console

# The guests' network: bridge xenbr0 (the default `bridge=` of a vif), dom0 at 10.0.0.1,
# leases from 10.0.0.10 on. Exists only inside the emulated machine.
ip link set lo up
if brctl addbr xenbr0; then
  echo 0 > /sys/class/net/xenbr0/bridge/forward_delay
  ip addr add 10.0.0.1/24 dev xenbr0
  ip link set xenbr0 up
  cat > /etc/udhcpd.conf <<CONF
interface xenbr0
start 10.0.0.10
end 10.0.0.99
lease_file /var/lib/udhcpd.leases
auto_time 1
option subnet 255.255.255.0
option router 10.0.0.1
option lease 3600
CONF
  : > /var/lib/udhcpd.leases
  udhcpd -S /etc/udhcpd.conf || echo "dom0-init: udhcpd failed"
else
  echo "dom0-init: cannot create bridge xenbr0 (module bridge missing?)"
fi

# Helpers for the loop below and for check scripts (which run in a subshell with
# GUEST (the domain name), DOMID and CONSOLE (its console log) set).

# The domain's state letters and shutdown code (`xl list -v` columns 5 and 8), or
# nothing when xl does not list it.
guest_state() {
  xl list -v 2>/dev/null | awk -v name="$1" '$1 == name {print $5, $8}'
}

# Whether domain $1 still runs (listed, neither shut down nor crashed). An empty answer
# is asked again: `xl` and busybox's applets crash now and then in this dom0 (CI once
# took a segfault here for a stopped control guest and failed the soak).
guest_running() {
  for _ in 1 2 3; do
    st=$(guest_state "$1")
    if [ -n "$st" ]; then
      case "${st%% *}" in *s*|*c*) return 1 ;; esac
      return 0
    fi
    sleep 0.5
  done
  return 1
}

# wait_console PATTERN SECONDS: waits until the guest's console log has a line matching
# PATTERN (grep -E); fails at once when the guest stops, or after SECONDS.
wait_console() {
  t=0
  while [ $t -lt $(($2 * 5)) ]; do
    grep -qE "$1" "$CONSOLE" 2>/dev/null && return 0
    if ! guest_running "$GUEST"; then
      sleep 0.5
      grep -qE "$1" "$CONSOLE" 2>/dev/null && return 0
      echo "wait_console: $GUEST stopped before printing /$1/"
      return 1
    fi
    sleep 0.2
    t=$((t + 1))
  done
  echo "wait_console: no /$1/ from $GUEST after $2 s"
  return 1
}

# What the networking side looks like: netback's and netfront's xenstore directories,
# the bridge's ports, addresses and DHCP leases. For debugging a frontend.
net_diagnostics() {
  echo "--- xenstore backend/vif/$DOMID (netback; state 2 InitWait, 4 Connected):"
  xenstore-ls -f /local/domain/0/backend/vif/$DOMID 2>&1
  echo "--- xenstore device/vif of domain $DOMID (netfront):"
  xenstore-ls -f /local/domain/$DOMID/device/vif 2>&1
  echo "--- ports of xenbr0: $(ls /sys/class/net/xenbr0/brif 2>&1 | tr '\n' ' ')"
  echo "--- ip addr:"
  ip addr 2>&1
  echo "--- DHCP leases:"
  dumpleases -f /var/lib/udhcpd.leases 2>&1
  for v in /sys/class/net/vif*; do
    [ -d "$v" ] || continue
    echo "--- ${v##*/}: rx_packets $(cat $v/statistics/rx_packets) tx_packets $(cat $v/statistics/tx_packets) operstate $(cat $v/operstate)"
  done
}

# soak KIND ADDR PORT SEQ WIDTH TOTAL BYTES: the soak's load against one guest (KIND
# morgana or linux, at ADDR:PORT): SEQ sequential HTTP/1.0 GETs of /, then TOTAL more
# with WIDTH of them open at any time, each checked for status 200 and a BYTES-byte
# body. Prints soak-client's `FAIL`, `STALLED` and `SOAK <mode> ok=.. failed=..` lines;
# at the first failure of each phase, soak-diagnostics (dom0's view and the guest's own
# report).
soak() {
  SOAK_KIND=$1 SOAK_ADDR=$2
  export SOAK_KIND SOAK_ADDR GUEST DOMID CONSOLE
  echo "SOAK-GUEST $1 $2 $GUEST (dom0 up $(cut -d ' ' -f 1 /proc/uptime) s)"
  soak-client -t 20000 -b "$7" -x soak-diagnostics "$2" "$3" seq "$4"
  [ "$6" -gt 0 ] && soak-client -t 60000 -b "$7" -x soak-diagnostics "$2" "$3" conc "$5" "$6"
  echo "SOAK-END $1 (dom0 up $(cut -d ' ' -f 1 /proc/uptime) s)"
  return 0
}

# One line on domain $DOMID's first vif once its hotplug is done (or after 10 s):
# netback's state, hotplug-status, and the bridge the vif is in.
vif_report() {
  b=/local/domain/0/backend/vif/$DOMID/0
  t=0
  while [ $t -lt 50 ] && [ "$(xenstore-read $b/hotplug-status 2>/dev/null)" != connected ]; do
    sleep 0.2
    t=$((t + 1))
  done
  state=$(xenstore-read $b/state 2>/dev/null || echo none)
  hotplug=$(xenstore-read $b/hotplug-status 2>/dev/null || echo none)
  bridge=none
  for br in /sys/class/net/*/brif/vif$DOMID.0; do
    [ -e "$br" ] || continue
    bridge=${br#/sys/class/net/}
    bridge=${bridge%%/*}
  done
  echo "backend-state:$state hotplug-status:$hotplug bridge:$bridge"
}

# wait_end NAME TICKS: waits up to TICKS x 0.2 s for domain NAME to shut down and sets
# `reason`: poweroff | crash | reboot | ... from the code it gave Xen, `gone` when xl
# no longer lists it, `running` when it still runs at the end.
wait_end() {
  # With on_* = "preserve" the domain stays after it shuts down, and `xl list -v` shows
  # the shutdown code it gave Xen (column Reason-Code: 0 poweroff, 1 reboot, 2 suspend,
  # 3 crash, 4 watchdog, 5 soft_reset).
  # xl itself occasionally fails (docs/architecture.md, "Facts learned"): only several empty answers in a row
  # mean the domain is gone.
  reason=running
  i=0
  missing=0
  while [ $i -lt $2 ]; do
    line=$(guest_state "$1")
    if [ -z "$line" ]; then
      missing=$((missing + 1))
      if [ $missing -ge 10 ]; then reason=gone; return; fi
      sleep 0.2
      i=$((i + 1))
      continue
    fi
    missing=0
    state=${line%% *}
    code=${line##* }
    case "$state" in
      *s*|*c*)
        case "$code" in
          0) reason=poweroff ;; 1) reason=reboot ;; 2) reason=suspend ;; 3) reason=crash ;;
          4) reason=watchdog ;; 5) reason=soft_reset ;; *) reason="code-$code" ;;
        esac
        return ;;
    esac
    sleep 0.2
    i=$((i + 1))
  done
}

# guest_context DIR DOMID: what dom0 can read of a stopped (or paused) guest's vCPU 0.
# xenctx: its registers and a stack trace named with the image's symbols (DIR/symbols,
# `nm -n` of the image); xen-hvmctx: the CPU state Xen saved (control registers,
# descriptor tables, the event being delivered) and the local APIC's; for a Morgana
# image (its symbols name morgana_pvh's flight recorder and stacks) the flight recorder
# (the last steps: docs/xen-under-qemu.md says how to read it) and the top of each
# interrupt stack (IST), where the last interrupt or exception left its frame.
guest_context() {
  if [ -f $1/symbols ]; then
    timeout 60 xenctx -a -k 0 -s $1/symbols -S -n 2 $2 2>&1
  else
    timeout 60 xenctx -a -S -n 2 $2 2>&1
  fi
  # The CPU and local APIC records (the rest: devices a PVH guest does not have).
  echo "--- xen-hvmctx $2:"
  timeout 60 xen-hvmctx $2 2>&1 | awk '/^Entry 4:/ {exit} {print}'
  [ -f $1/symbols ] || return 0
  flight=$(awk '/6flight8RECORDER/ {print $1; exit}' $1/symbols)
  stacks=$(awk '/6stacks6STACKS/ {print $1; exit}' $1/symbols)
  if [ -n "$flight" ]; then
    echo "--- flight recorder at 0x$flight (count, then 64 x (kind << 56 | arg, microseconds)):"
    timeout 60 xenctx -m 0x$flight -l 129 -b 8 $2 2>&1 | grep -v '^ *$'
  fi
  if [ -n "$stacks" ]; then
    # Tops of the exception, double-fault, NMI and interrupt stacks (platform/pvh's
    # stacks.rs: a 256 KiB boot stack, then 16 KiB ones, each above a 4 KiB guard).
    for top in exception:286720 double-fault:307200 nmi:327680 interrupt:348160; do
      at=$(printf '%x' $((0x$stacks + ${top#*:} - 256)))
      echo "--- ${top%%:*} stack, its top 256 bytes from 0x$at:"
      timeout 60 xenctx -m 0x$at -l 16 -b 16 $2 2>&1 | grep -v '^ *$'
    done
  fi
}

# console_settle: waits until xenconsoled has written out the last of the guest's
# console ring, that is until its log ($CONSOLE) has stayed the same size for 1 s (at
# most 10 s: a busy dom0 under TCG may take seconds to get to it), and sets `settled`
# to what it saw: the size, the wait, and whether xenconsoled ever attached to the
# domain's console (it writes console/tty when it does).
console_settle() {
  last=none
  same=0
  t=0
  while [ $t -lt 50 ]; do
    size=$(wc -c < "$CONSOLE" 2>/dev/null) || size=none
    if [ "$size" = "$last" ] && [ "$size" != none ]; then
      same=$((same + 1))
      [ $same -ge 5 ] && break
    else
      same=0
      last=$size
    fi
    sleep 0.2
    t=$((t + 1))
  done
  tty=$(xenstore-read /local/domain/$DOMID/console/tty 2>/dev/null) || tty=none
  settled="$size bytes after $((t / 5)).$((t % 5 * 2)) s, xenconsoled's tty $tty"
  [ $t -lt 50 ] || settled="$settled; STILL CHANGING (or missing) after 10 s"
}

# One guest: create it from its xl config, wait until it has shut down (or run its
# check, then shut it down), report.
run_guest() {
  n=$1
  dir=/guest/$n
  GUEST=guest$n
  cmdline=$(cat $dir/cmdline)
  echo "===MORGANA-XEN-CREATE-$n=== (dom0 up $(cut -d ' ' -f 1 /proc/uptime) s)"
  kernel=$dir/kernel
  [ -f $dir/kernel-path ] && kernel=$(cat $dir/kernel-path)
  if [ -f $dir/disk ]; then
    read -r mib image < $dir/disk
    if [ -f $dir/disk-new ] && [ -e "/$image" ]; then
      rm -f "/$image"
      echo "harness: removed the earlier guest's disk image /$image"
    fi
    if [ ! -e "/$image" ]; then
      dd if=/dev/zero of="/$image" bs=1M count=0 seek="$mib" 2>/dev/null
      echo "harness: created the disk image /$image ($mib MiB, sparse)"
    fi
  fi
  if [ -f $dir/config.xl ]; then
    # The given config as it is, but for what the harness needs: its own name and
    # kernel path, and every domain kept after it stops so that its reason can be read.
    set -- "name=\"$GUEST\"" "kernel=\"$kernel\"" 'on_poweroff="preserve"' \
      'on_crash="preserve"' 'on_reboot="preserve"'
    [ -z "$cmdline" ] || set -- "$@" "cmdline=\"$cmdline\""
    [ -f $dir/ramdisk ] && set -- "$@" "ramdisk=\"$dir/ramdisk\""
    xl create $dir/config.xl "$@" 2>&1
  else
    cat > $dir/guest.cfg <<CFG
name = "$GUEST"
type = "pvh"
kernel = "$kernel"
memory = 32
vcpus = 1
tsc_mode = "native"
cmdline = "$cmdline"
on_poweroff = "preserve"
on_crash = "preserve"
on_reboot = "preserve"
CFG
    xl create $dir/guest.cfg 2>&1
  fi
  # xl now and then aborts under TCG (docs/architecture.md, "Facts learned"): ask again before giving up.
  DOMID=
  for try in 1 2 3 4 5; do
    DOMID=$(xl domid $GUEST 2>/dev/null) && [ -n "$DOMID" ] && break
    [ $try = 5 ] || echo "harness: xl domid $GUEST failed (try $try of 5); asking again"
    sleep 0.2
  done
  CONSOLE=/var/log/xen/console/guest-$GUEST.log
  if [ -n "$DOMID" ] && xenstore-exists /local/domain/0/backend/vif/$DOMID 2>/dev/null; then
    echo "===MORGANA-XEN-VIF-$n=$(vif_report)==="
  fi

  if [ -f $dir/check ]; then
    echo "===MORGANA-XEN-CHECK-BEGIN-$n==="
    if (export GUEST DOMID CONSOLE; . $dir/check) 2>&1; then
      echo "===MORGANA-XEN-CHECK-END-$n=ok==="
    else
      echo "check failed: networking as dom0 sees it"
      net_diagnostics 2>&1
      echo "===MORGANA-XEN-CHECK-END-$n=failed==="
    fi
    # Ask the guest to shut down (xenstore control/shutdown); a guest that does not
    # watch it runs on and is destroyed below.
    if guest_running $GUEST; then
      # xl now and then aborts under TCG before it has written the request: try again.
      for try in 1 2 3; do
        xl shutdown $GUEST >/dev/null 2>&1 && break
        [ $try = 3 ] || echo "harness: xl shutdown $GUEST failed (try $try of 3); asking again"
        sleep 0.2
      done
      wait_end $GUEST 50
      if [ "$reason" = running ]; then
        echo "shutdown: $GUEST still runs; control/shutdown =" \
          "'$(xenstore-read /local/domain/$DOMID/control/shutdown 2>&1)'"
      fi
    else
      wait_end $GUEST 50
    fi
  else
    wait_end $GUEST 600
    [ "$reason" != running ] || reason=timeout
  fi
  console_settle
  echo "guest $n ends (dom0 up $(cut -d ' ' -f 1 /proc/uptime) s; console log: $settled)"
  echo "===MORGANA-XEN-CONSOLE-BEGIN-$n==="
  cat $CONSOLE 2>/dev/null
  echo "===MORGANA-XEN-CONSOLE-END-$n==="
  echo "===MORGANA-XEN-SHUTDOWN-$n=$reason==="
  # Nothing here asks a guest to reboot: reason reboot is a triple fault (Xen's log says
  # "Triple fault - invoking HVM shutdown action 1"), after which the guest could report
  # nothing. Its vCPU's registers and stack, named with the image's symbols, are the
  # only trace: xenctx reads them from the preserved domain.
  if [ "$reason" = reboot ] && [ -n "$DOMID" ]; then
    echo "===MORGANA-XEN-CONTEXT-BEGIN-$n==="
    guest_context $dir $DOMID
    echo "===MORGANA-XEN-CONTEXT-END-$n==="
  fi
  xl destroy $GUEST >/dev/null 2>&1
}

n=0
while [ -d /guest/$n ]; do
  run_guest $n
  n=$((n + 1))
done
echo "===MORGANA-XEN-DONE==="
poweroff -f
