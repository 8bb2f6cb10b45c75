#!/bin/sh
# /init of the soak's control guest (tests/xen/fetch.sh builds its initramfs): Debian's
# own kernel as a Xen PV domU, with the stock xen-netfront driver and busybox httpd
# serving the same page as static-website on port 8080. Its address comes from the
# kernel command line (`soak.ip=10.0.0.3/24`). The same load runs against it and
# against static-website in the same Xen boot: when only one of them fails, the
# difference is in the guest, not in dom0 (docs/xen-under-qemu.md, "The soak").
#
# A line `diag` written to its console (dom0: into the pty named by the domain's
# console/tty node) prints its network state: the guest's side of the soak's
# diagnostics.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
insmod /modules/xen-netfront.ko || echo "linux-control: insmod xen-netfront failed"
addr=$(sed -n 's/.*soak\.ip=\([0-9./]*\).*/\1/p' /proc/cmdline)
# The checksum of busybox as booted, for `diag`: when httpd crash-loops (every restart
# dies at once), whether the binary in memory (rootfs) has changed since tells a
# corrupted page from a crash in a sound binary.
boot_sum=$(busybox sha256sum /bin/busybox | cut -d ' ' -f 1)
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
ip link set eth0 up
ip addr add "$addr" dev eth0
# busybox httpd runs in the foreground under a loop that starts it again: in this
# nested domU its process dies now and then (static glibc under TCG; CI once saw the
# listening parent go at the first connection, and every later one was reset). Each
# restart is printed, and the test counts them (tests/tests/xen.rs).
(
  while :; do
    httpd -f -p 8080 -h /www
    echo "linux-control: httpd exited with status $?, restarting"
    sleep 0.2
  done
) &
# "serving" once port 8080 (1F90) is in LISTEN (0A) state.
i=0
while ! grep -q ':1F90 00000000:0000 0A' /proc/net/tcp && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "linux-control: serving on $addr"

diag() {
  echo "linux diagnostics: $(cut -d ' ' -f 1 /proc/uptime) s"
  for f in rx_packets rx_bytes rx_dropped rx_errors tx_packets tx_bytes tx_dropped tx_errors; do
    printf '%s %s ' $f "$(cat /sys/class/net/eth0/statistics/$f)"
  done
  echo
  echo "linux diagnostics: carrier $(cat /sys/class/net/eth0/carrier) operstate $(cat /sys/class/net/eth0/operstate)"
  grep -E 'Tcp:|Ip:' /proc/net/snmp
  echo "linux diagnostics: arp"; cat /proc/net/arp
  echo "linux diagnostics: TCP sockets by state (hex, /proc/net/tcp)"
  awk 'NR > 1 {n[$4]++} END {for (s in n) printf "  state %s: %d\n", s, n[s]}' /proc/net/tcp
  echo "linux diagnostics: event channel interrupts"; grep -i xen-dyn /proc/interrupts
  echo "linux diagnostics: httpd processes $(ls -d /proc/[0-9]* | while read p; do cat $p/comm 2>/dev/null; done | grep -c httpd)"
  echo "linux diagnostics: busybox sha256 at boot $boot_sum, now $(busybox sha256sum /bin/busybox | cut -d ' ' -f 1)"
  # The kernel's reports of crashed processes (where and why; `quiet` keeps them off
  # the console, and the test counts these lines).
  echo "linux diagnostics: the kernel's last crash reports"
  busybox dmesg | grep -E 'segfault at|general protection fault|traps:' | busybox tail -n 10
}

while read -r line; do
  case "$line" in
    diag*) diag ;;
  esac
done
# The console went away: keep running (PID 1 must not exit).
while :; do sleep 3600; done
