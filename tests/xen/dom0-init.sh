#!/bin/sh
# dom0's /init in the Xen harness (tests/xen/run-guest.sh): starts the Xen daemons, runs
# each /guest/N/kernel (N = 0, 1, ...) as a PVH guest in turn, prints its console log
# and shutdown reason between markers, then powers the machine off.
export PATH=/bin:/sbin:/usr/lib/xen-4.17/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/xenstored /var/run/xen /var/log/xen/console /var/lib/xenstored /var/lib/xen
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc; do
  [ -f /modules/$m.ko ] && insmod /modules/$m.ko
done
mount -t xenfs xenfs /proc/xen
XENSTORED_ROOTDIR=/var/lib/xenstored xenstored --pid-file=/run/xenstored.pid
i=0
while [ ! -S /run/xenstored/socket ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
xen-init-dom0 >/dev/null 2>&1
xenconsoled --log=guest --log-dir=/var/log/xen/console

# One guest: write its xl config, create it, wait until it has shut down, report.
run_guest() {
  n=$1
  dir=/guest/$n
  cmdline=$(cat $dir/cmdline)
  cat > $dir/guest.cfg <<CFG
name = "guest$n"
type = "pvh"
kernel = "$dir/kernel"
memory = 32
vcpus = 1
cmdline = "$cmdline"
on_poweroff = "preserve"
on_crash = "preserve"
on_reboot = "preserve"
CFG
  echo "===MORGANA-XEN-CREATE-$n==="
  xl create $dir/guest.cfg 2>&1

  # With on_* = "preserve" the domain stays after it shuts down, and `xl list -v` shows
  # the shutdown code it gave Xen (column Reason-Code: 0 poweroff, 1 reboot, 2 suspend,
  # 3 crash, 4 watchdog, 5 soft_reset).
  # xl itself occasionally fails (see the notes): only several empty answers in a row
  # mean the domain is gone.
  reason=timeout
  i=0
  missing=0
  while [ $i -lt 600 ]; do
    line=$(xl list -v 2>/dev/null | awk -v name="guest$n" '$1 == name {print $5, $8}')
    if [ -z "$line" ]; then
      missing=$((missing + 1))
      if [ $missing -ge 10 ]; then reason=gone; break; fi
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
        break ;;
    esac
    sleep 0.2
    i=$((i + 1))
  done
  # Give xenconsoled a moment to write out the last of the ring.
  sleep 0.5
  echo "===MORGANA-XEN-CONSOLE-BEGIN-$n==="
  cat /var/log/xen/console/guest-guest$n.log 2>/dev/null
  echo "===MORGANA-XEN-CONSOLE-END-$n==="
  echo "===MORGANA-XEN-SHUTDOWN-$n=$reason==="
  xl destroy guest$n >/dev/null 2>&1
}

n=0
while [ -d /guest/$n ]; do
  run_guest $n
  n=$((n + 1))
done
echo "===MORGANA-XEN-DONE==="
poweroff -f
