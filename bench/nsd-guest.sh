#!/usr/bin/env bash
# Reference for the DNS kernel: NSD (one server process, RRL off) in a Linux guest under
# QEMU with the same flags as a Morgana PVH image (QEMU_MACHINE_ARGS and QEMU_NIC in
# lib/common.sh, user net + hostfwd of UDP and TCP port PORT to the guest's 53).
#
#   nsd-guest.sh build                       the base initramfs (cached): linux-guest.sh's
#                                            Debian kernel, busybox and virtio modules, plus
#                                            the host's nsd binary and the libraries it links
#   nsd-guest.sh boot ZONEFILE ZONE PORT MEM_MB LOG
#                                            start QEMU in the background serving ZONEFILE as
#                                            zone ZONE; prints its pid. The zone goes in a
#                                            second cpio archive appended to the cached one.
# The guest prints NSD-READY on its serial console (LOG) once nsd runs.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$BENCH_CACHE/nsd-guest
mkdir -p "$CACHE"

build() {
  command -v nsd >/dev/null || { echo "nsd-guest: nsd missing (scripts/setup.sh installs it)" >&2; exit 1; }
  local nsd; nsd=$(command -v nsd)
  # Rebuilt when the host's nsd changes (a Debian update).
  local stamp; stamp=$(sha256sum "$nsd" | cut -c1-16)
  if [ -f "$CACHE/initrd-$stamp.gz" ] && [ -f "$CACHE/vmlinuz" ]; then return 0; fi
  bash "$HERE/linux-guest.sh" build
  local lg=$BENCH_CACHE/linux-guest
  apt_need cpio gzip
  rm -rf "$CACHE"/rootfs "$CACHE"/initrd-*.gz
  mkdir -p "$CACHE/rootfs"
  cp -a "$lg/rootfs/bin" "$lg/rootfs/lib" "$CACHE/rootfs/"
  cp "$lg/vmlinuz" "$CACHE/vmlinuz"
  local r=$CACHE/rootfs
  mkdir -p "$r"/{proc,sys,dev,tmp,etc,zone,usr/sbin,lib64,lib/x86_64-linux-gnu}
  cp "$nsd" "$r/usr/sbin/nsd"
  # The libraries nsd links, at the paths the dynamic loader looks in.
  ldd "$nsd" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/lib64\// {print $1}' | while read -r lib; do
    mkdir -p "$r$(dirname "$lib")"; cp -L "$lib" "$r$lib"
  done
  echo 'root:x:0:0:root:/:/bin/sh' > "$r/etc/passwd"
  echo 'root:x:0:' > "$r/etc/group"
  cat > "$r/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
/usr/sbin/nsd -d -c /zone/nsd.conf & pid=$!
sleep 2
if kill -0 $pid; then echo NSD-READY; else echo NSD-FAILED; cat /tmp/nsd.log; fi
while true; do sleep 1000; done
INIT
  chmod +x "$r/init"
  (cd "$r" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$CACHE/initrd-$stamp.gz")
}

case "${1:-}" in
  build) build ;;
  boot)
    zonefile=${2:?zone file} zone=${3:?zone name} port=${4:?port} mem=${5:?mem} log=${6:?serial log}
    build
    stamp=$(sha256sum "$(command -v nsd)" | cut -c1-16)
    work=$(dirname "$log")/nsd-guest-$port; rm -rf "$work"; mkdir -p "$work/zone"
    cp "$zonefile" "$work/zone/zone.db"
    cat > "$work/zone/nsd.conf" <<EOF
server:
  ip-address: 0.0.0.0@53
  server-count: 1
  zonesdir: "/zone"
  database: ""
  pidfile: "/tmp/nsd.pid"
  xfrdfile: "/tmp/xfrd.state"
  zonelistfile: "/tmp/zone.list"
  username: ""
  chroot: ""
  logfile: "/tmp/nsd.log"
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: $zone
  zonefile: zone.db
EOF
    # The kernel unpacks concatenated cpio archives in order: the zone lands in /zone.
    (cd "$work" && find zone | cpio -o -H newc 2>/dev/null | gzip -1 > zone.cpio.gz)
    cat "$CACHE/initrd-$stamp.gz" "$work/zone.cpio.gz" > "$work/initrd.gz"
    qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m "$mem" \
      -kernel "$CACHE/vmlinuz" -initrd "$work/initrd.gz" -append "console=ttyS0 quiet" \
      -serial "file:$log" \
      -netdev "user,id=n0,hostfwd=udp:127.0.0.1:$port-:53,hostfwd=tcp:127.0.0.1:$port-:53" -device "$QEMU_NIC" \
      </dev/null >/dev/null 2>&1 &
    echo $! ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
