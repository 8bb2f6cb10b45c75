#!/usr/bin/env bash
# Reference: Debian's Linux kernel + busybox httpd (static 10.0.2.15, no DHCP) booted under
# QEMU with the same flags as a Morgana PVH image (QEMU_MACHINE_ARGS and QEMU_NIC in lib/common.sh,
# -m, user net + hostfwd).
#
#   linux-guest.sh build                    fetch kernel + busybox with apt-get download, build initrd (cached)
#   linux-guest.sh boot PORT MEM_MB LOG     start QEMU in the background; prints its pid
# The files it serves: /index.html (600 B), /small.html (600 B), /100k.bin (100 KB).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/guest-initrd.sh"
CACHE=$BENCH_CACHE/linux-guest
mkdir -p "$CACHE"

build() {
  cd "$CACHE"
  # Rebuilt when the module list changes.
  local modules="$GUEST_NET_MODULES $GUEST_DISK_MODULES"
  if [ -f initrd.gz ] && [ -f vmlinuz ] && [ "$(cat modules.list 2>/dev/null)" = "$modules" ]; then return 0; fi
  apt_need cpio gzip
  rm -rf debs x rootfs; mkdir -p debs x
  (cd debs && apt-get download busybox-static linux-image-amd64 >/dev/null 2>&1) || {
    apt-get update >/dev/null 2>&1; (cd debs && apt-get download busybox-static linux-image-amd64 >/dev/null); }
  # linux-image-amd64 is a meta package: fetch the real kernel package it depends on.
  kpkg=$(dpkg-deb -f debs/linux-image-amd64_*.deb Depends | sed 's/[ ,(].*//')
  (cd debs && apt-get download "$kpkg" >/dev/null)
  for f in debs/*.deb; do dpkg -x "$f" x; done
  cp x/boot/vmlinuz-* vmlinuz
  mkdir -p rootfs/{bin,proc,sys,dev,www,lib/modules}
  cp x/bin/busybox rootfs/bin/
  for m in $modules; do
    f=$(find x/lib/modules -name "$m.ko*" | head -1)
    if [ -n "$f" ]; then
      case "$f" in *.xz) xz -dc "$f" > "rootfs/lib/modules/$m.ko" ;; *.zst) zstd -qdc "$f" > "rootfs/lib/modules/$m.ko" ;; *) cp "$f" rootfs/lib/modules/ ;; esac
    fi
  done
  cat > rootfs/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
printf '%0599d\n' 0 > /www/index.html
cp /www/index.html /www/small.html
dd if=/dev/zero of=/www/100k.bin bs=1000 count=100 2>/dev/null
httpd -p 80 -h /www
echo READY
while true; do sleep 1000; done
INIT
  chmod +x rootfs/init
  (cd rootfs && find . | cpio -o -H newc 2>/dev/null | gzip -1 > ../initrd.gz)
  rm -rf debs x
  echo "$modules" > modules.list
}

case "${1:-}" in
  build) build ;;
  boot)
    port=${2:?port} mem=${3:?mem} log=${4:?serial log}
    build
    qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m "$mem" \
      -kernel "$CACHE/vmlinuz" -initrd "$CACHE/initrd.gz" -append "console=ttyS0 quiet" \
      -serial "file:$log" \
      -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:80" -device "$QEMU_NIC" \
      </dev/null >/dev/null 2>&1 &
    echo $! ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac
