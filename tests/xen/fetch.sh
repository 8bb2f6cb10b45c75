#!/usr/bin/env bash
# Fetches and unpacks the Debian packages of the Xen harness into CACHE (argument), and
# builds the dom0 initramfs base there (base.cpio.gz) plus `xen` (uncompressed, for
# QEMU's multiboot loader) and `vmlinuz`. Downloads are kept; the unpacked tree is
# rebuilt every run. run-guest.sh reruns this script whenever its text changed (the
# finished tree records this file's checksum in root/.complete), so adding a package
# or module here is picked up by existing caches.
set -euo pipefail
CACHE=${1:?usage: fetch.sh CACHE_DIR}
STAMP=$(sha256sum < "$0")
mkdir -p "$CACHE/debs"
cd "$CACHE/debs"

KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$KPKG" ]; then
  echo "fetch.sh: cannot resolve linux-image-amd64 (run apt-get update, see scripts/setup.sh)" >&2
  exit 1
fi
PKGS="xen-hypervisor-4.17-amd64 xen-utils-4.17 libxenmisc4.17 libxencall1 libxenevtchn1
  libxenforeignmemory1 libxengnttab1 libxenstore4 libxentoollog1 libxentoolcore1
  libxendevicemodel1 libxenhypfs1 libyajl2 liblzma5 libzstd1 zlib1g libuuid1 libgcc-s1
  libc6 busybox-static xenstore-utils $KPKG"
for p in $PKGS; do
  if ! ls "${p}"_*.deb >/dev/null 2>&1; then
    # (apt warns that root downloads unsandboxed into a directory _apt cannot write.)
    apt-get download -qq "$p" 2>&1 >/dev/null | grep -v 'unsandboxed as root' >&2 || true
    if ! ls "${p}"_*.deb >/dev/null 2>&1; then
      echo "fetch.sh: apt-get download $p failed (apt-get update? see scripts/setup.sh)" >&2
      exit 1
    fi
  fi
done

rm -rf "$CACHE/root" "$CACHE/pkgs"
mkdir -p "$CACHE/pkgs"
for d in *.deb; do dpkg -x "$d" "$CACHE/pkgs"; done
P=$CACHE/pkgs

zcat "$P"/boot/xen-4.17-amd64.gz > "$CACHE/xen"
cp "$P"/boot/vmlinuz-* "$CACHE/vmlinuz"
KVER=$(ls "$P/lib/modules")

R=$CACHE/root
mkdir -p "$R"/{bin,sbin,lib,lib64,usr/lib/x86_64-linux-gnu,etc,proc,sys,dev,run,tmp,var/lib/xenstored,var/log/xen/console,var/run,modules,guest}
cp "$P/bin/busybox" "$R/bin/busybox"
# Every busybox applet (ip, brctl, udhcpd, wget, nc, sha256sum, timeout, ...).
for a in $("$R/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"
done
XB=$P/usr/lib/xen-4.17/bin
mkdir -p "$R/usr/lib/xen-4.17/bin"
# xenctx and xen-hvmctx: the registers, stacks and saved CPU state (descriptor tables,
# the event being delivered) of a guest that died without a word (dom0-init.sh).
for b in xl xenstored xenconsoled xen-init-dom0 xenctx xen-hvmctx; do
  f=$XB/$b
  [ -f "$f" ] || f=$(find "$P" -name "$b" -type f | head -1)
  cp "$f" "$R/usr/lib/xen-4.17/bin/$b"
done
# xenstore-utils: one program that acts by the name it is called under.
cp "$P/usr/bin/xenstore" "$R/bin/xenstore"
for a in read write ls list exists rm watch chmod; do ln -sf xenstore "$R/bin/xenstore-$a"; done
# Shared libraries: everything the packages ship under lib dirs (simplest and robust).
for dir in lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu usr/lib/xen-4.17/lib; do
  [ -d "$P/$dir" ] || continue
  mkdir -p "$R/$dir"
  find "$P/$dir" -maxdepth 1 \( -name '*.so*' \) -exec cp -a {} "$R/$dir/" \;
done
mkdir -p "$R/lib64"
cp -a "$P"/lib64/ld-linux-x86-64.so.2 "$R/lib64/" 2>/dev/null || ln -sf /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib64/ld-linux-x86-64.so.2"
# unpack_module NAME DEST: the kernel module NAME, uncompressed (insmod takes no .xz).
unpack_module() {
  local f
  f=$(find "$P/lib/modules/$KVER" -name "$1.ko*" | head -1)
  if [ -z "$f" ]; then echo "fetch.sh: module $1 not found (built in?)" >&2; return; fi
  case "$f" in
    *.xz) xz -dc "$f" > "$2" ;;
    *.zst) zstd -dqc "$f" > "$2" ;;
    *) cp "$f" "$2" ;;
  esac
}
# llc, stp, bridge: the dom0 bridge xenbr0; xen-netback: the backend of guests' vifs;
# loop and xen-blkback: the backend of guests' disks (images attached by
# tests/xen/block).
for m in xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc llc stp bridge xen-netback loop xen-blkback; do
  unpack_module $m "$R/modules/$m.ko"
done
# The soak's Linux control guest (a PV domU): the same kernel, booted by dom0 from
# /linux/vmlinuz; its initramfs (busybox, xen-netfront, linux-control-init.sh) is put
# together per run by run-guest.sh from $CACHE/linux-guest.
mkdir -p "$R/linux" "$CACHE/linux-guest"
cp "$CACHE/vmlinuz" "$R/linux/vmlinuz"
unpack_module xen-netfront "$CACHE/linux-guest/xen-netfront.ko"
cp "$P/bin/busybox" "$CACHE/linux-guest/busybox"
# Written aside and renamed: a harness run may be reading the old one.
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$CACHE/base.cpio.gz.new"
mv "$CACHE/base.cpio.gz.new" "$CACHE/base.cpio.gz"
echo "$STAMP" > "$R/.complete"
