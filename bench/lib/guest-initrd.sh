# Linux guests for the kernel figures: Debian's kernel with an initramfs made of
# bench/linux-guest.sh's base (busybox, the virtio modules) and host programs (a server
# and the shared libraries it links). Sourced after lib/common.sh.
#
#   guest_root DIR               DIR := a fresh copy of the base root file system
#   guest_add_program DIR PROG...  the host programs PROG (paths) at the same paths, and
#                                the libraries ldd names, where the dynamic loader looks
#   guest_init DIR < SCRIPT      DIR/init: busybox's applets, /proc /sys /dev, the
#                                virtio-net modules, 10.0.2.15/24 on eth0 (QEMU's user
#                                network), then SCRIPT (shell, read from stdin)
#   guest_pack DIR OUT           DIR as a gzipped newc cpio archive at OUT
#   GUEST_KERNEL                 the kernel (vmlinuz) these initramfs boot with

# Kernel modules the base carries, in load order (Debian builds them as modules).
GUEST_NET_MODULES="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net"
# virtio-blk and ext4 (with what ext4 and its journal need); guests with a disk load them.
GUEST_DISK_MODULES="virtio_blk crc16 mbcache jbd2 crc32c_generic ext4"
GUEST_KERNEL=$BENCH_CACHE/linux-guest/vmlinuz

guest_root() {
  bash "$BENCH_ROOT/bench/linux-guest.sh" build >&2
  apt_need cpio gzip
  rm -rf "$1"; mkdir -p "$1"
  cp -a "$BENCH_CACHE/linux-guest/rootfs/." "$1/"
  mkdir -p "$1"/{proc,sys,dev,tmp,run,etc}
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$1/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$1/etc/group"
}

guest_add_program() {
  local root=$1 prog lib; shift
  for prog in "$@"; do
    mkdir -p "$root$(dirname "$prog")"; cp -L "$prog" "$root$prog"
    ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | while read -r lib; do
      mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
    done
  done
}

guest_init() {
  { cat <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
for m in $GUEST_NET_MODULES; do
  [ -f /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko
done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
INIT
    cat; } > "$1/init"
  chmod +x "$1/init"
}

guest_pack() {
  (cd "$1" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$2")
}
