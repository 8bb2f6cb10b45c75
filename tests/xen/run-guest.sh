#!/usr/bin/env bash
# Boots Debian's Xen 4.17 under QEMU (TCG) with a Linux dom0 that runs PVH guests one
# after the other and reports each one's console output and shutdown reason on the
# serial line. One Xen boot serves several guests (a boot costs ~20-60 s under TCG).
#
#   tests/xen/run-guest.sh GUEST [GUEST]...
#   GUEST = [--xl CONFIG] [--check SCRIPT] [--www DIR] [--disk MIB:IMAGE] [--new-disk MIB:IMAGE]
#           [--file PATH]... KERNEL_IMAGE GUEST_CMDLINE
#
# --xl CONFIG   start the guest from this xl config (e.g. the `<name>.xl` a build wrote)
#               instead of the harness's own; its name, kernel, cmdline (if not empty)
#               and on_poweroff/on_crash/on_reboot ("preserve") are overridden on xl's
#               command line, everything else (memory, vif, ...) is checked and used
#               by the real xl.
# --check SCRIPT  a busybox-sh script that dom0 sources in a subshell right after the
#               guest is created, with GUEST, DOMID, CONSOLE (its console log) and the
#               helpers of dom0-init.sh (wait_console PATTERN SECONDS, guest_running,
#               net_diagnostics). Its output and exit status are reported; then the
#               harness shuts the guest down (`xl shutdown`, then `xl destroy`).
# --www DIR     (with @linux-control) the files its httpd serves.
# --disk MIB:IMAGE  the guest's disk image (the `target=` of its xl config, relative to
#               dom0's /): created there at MIB MiB, sparse, unless it exists already
#               (so a later guest with the same IMAGE finds an earlier one's data).
#               dom0 serves it with xen-blkback over a loop device (tests/xen/block).
# --new-disk MIB:IMAGE  as --disk, but made blank for this guest even if an earlier
#               guest left one there.
# --file PATH   copies the host's file PATH (absolute) to the same path in dom0: a disk
#               image an xl config names by its absolute path, such as the read-only
#               image a build writes next to the kernel (`Block(from: ..)`).
#
# KERNEL_IMAGE `@linux-control` is the soak's control guest: Debian's kernel as a Linux
# PV domU with xen-netfront and busybox httpd on port 8080 (tests/xen/linux-control-init.sh,
# tests/xen/linux-control.xl); its GUEST_CMDLINE gives its address, `soak.ip=A.B.C.D/N`.
#
# dom0 also has the soak's load generator, `soak-client` (tests/xen/soak-client.c, built
# here with gcc -static), and the `soak` helper for check scripts (dom0-init.sh).
#
# dom0 has bridge xenbr0 at 10.0.0.1/24 with a DHCP server (10.0.0.10-99); a vif's
# hotplug script is tests/xen/vif-bridge.
#
# Output (stdout, QEMU's serial) contains, for guest N (0, 1, ...) in order:
#   ===MORGANA-XEN-VIF-N=backend-state:S hotplug-status:H bridge:B===   if it has a vif
#   ===MORGANA-XEN-CHECK-BEGIN-N=== ... ===MORGANA-XEN-CHECK-END-N=ok|failed===   with --check
#   ===MORGANA-XEN-CONSOLE-BEGIN-N=== ... ===MORGANA-XEN-CONSOLE-END-N===   its PV console
#   ===MORGANA-XEN-SHUTDOWN-N=<reason>===   poweroff | crash | reboot | ... | gone, and
#       timeout (no --check: still running after 120 s) or running (--check: it did
#       not shut down when asked after the check, and was destroyed)
# and finally ===MORGANA-XEN-DONE===.
#
# E.g. static-website on Xen by hand, with a check that it answers:
#   MORGANA_TARGET=xen CARGO_TARGET_DIR=target/e2e-xen cargo build --release -p static-website
#   echo 'wait_console "serving" 60 && sed -n "s/.*ipv4 \(.*\)\/24 leased.*/\1/p" $CONSOLE' > /tmp/c
#   tests/xen/run-guest.sh --xl target/e2e-xen/release/static-website.xl --check /tmp/c \
#       target/e2e-xen/release/static-website ''
#
# MORGANA_XEN_TIMEOUT bounds the whole QEMU run (default 1800 s); MORGANA_XEN_CPU is
# QEMU's -cpu (default max: Xen needs SVM and NPT).
#
# Packages are fetched with `apt-get download` into $MORGANA_XEN_CACHE (default
# ~/.cache/morgana-xen) and unpacked there; nothing is installed. Needs cpio, gzip and
# qemu-system-x86_64 10 and gcc (scripts/setup.sh). How and why it works:
# docs/xen-under-qemu.md.
set -euo pipefail

usage() {
  echo "usage: run-guest.sh [--xl CONFIG] [--check SCRIPT] [--www DIR] [--disk MIB:IMAGE] [--new-disk MIB:IMAGE] [--file PATH]... KERNEL_IMAGE GUEST_CMDLINE [...]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
CACHE=${MORGANA_XEN_CACHE:-$HOME/.cache/morgana-xen}
TIMEOUT=${MORGANA_XEN_TIMEOUT:-1800}
HERE=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$CACHE/debs"
# One fetch at a time (tests may run the harness in parallel).
(
  flock 9
  # root/.complete holds the checksum of the fetch.sh that built the tree.
  if [ "$(cat "$CACHE/root/.complete" 2>/dev/null)" != "$(sha256sum < "$HERE/fetch.sh")" ]; then
    "$HERE/fetch.sh" "$CACHE" >&2
  fi
) 9>"$CACHE/.lock"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/morgana-xen.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The per-run part of the initramfs: /init, the guest images and their command lines,
# appended as a second cpio archive to the cached base (the kernel unpacks concatenated
# archives).
# linux_control DIR WWW: the control guest's xl config and initramfs into DIR (its
# kernel is dom0's own, /linux/vmlinuz, in the cached base).
linux_control() {
  local r=$WORK/linux-root
  rm -rf "$r"
  mkdir -p "$r"/{bin,sbin,proc,sys,dev,modules,www}
  cp "$CACHE/linux-guest/busybox" "$r/bin/busybox"
  for a in sh ash mount insmod ip sed cat awk grep sleep httpd echo cut printf ls; do
    ln -s busybox "$r/bin/$a"
  done
  # The kernel runs /sbin/poweroff when the toolstack asks (`xl shutdown`). Through
  # sysrq, not busybox's poweroff applet, which dies of a general protection fault in
  # this guest as busybox-static does now and then in dom0 (docs/xen-under-qemu.md).
  printf '#!/bin/sh\necho o > /proc/sysrq-trigger\n' > "$r/sbin/poweroff"
  chmod +x "$r/sbin/poweroff"
  cp "$CACHE/linux-guest/xen-netfront.ko" "$r/modules/"
  cp "$HERE/linux-control-init.sh" "$r/init"
  chmod +x "$r/init"
  if [ -n "$2" ]; then cp -r "$2"/. "$r/www/"; fi
  (cd "$r" && find . | cpio -o -H newc --quiet | gzip -1) > "$1/ramdisk"
  [ -f "$1/config.xl" ] || cp "$HERE/linux-control.xl" "$1/config.xl"
}

n=0
while [ $# -gt 0 ]; do
  g=$WORK/extra/guest/$n
  mkdir -p "$g"
  www=
  while [ $# -gt 0 ]; do
    case "$1" in
      --xl) [ $# -ge 2 ] || usage; cp "$2" "$g/config.xl"; shift 2 ;;
      --check) [ $# -ge 2 ] || usage; cp "$2" "$g/check"; shift 2 ;;
      --www) [ $# -ge 2 ] || usage; www=$2; shift 2 ;;
      --disk) [ $# -ge 2 ] || usage; echo "${2%%:*} ${2#*:}" > "$g/disk"; shift 2 ;;
      --new-disk) [ $# -ge 2 ] || usage; echo "${2%%:*} ${2#*:}" > "$g/disk"; : > "$g/disk-new"; shift 2 ;;
      --file)
        [ $# -ge 2 ] || usage
        case "$2" in /*) ;; *) echo "run-guest.sh: --file takes an absolute path, not $2" >&2; exit 2 ;; esac
        mkdir -p "$WORK/extra$(dirname "$2")"
        cp "$2" "$WORK/extra$2"
        shift 2 ;;
      --*) echo "run-guest.sh: unknown option $1" >&2; usage ;;
      *) break ;;
    esac
  done
  [ $# -ge 1 ] || usage
  if [ "$1" = @linux-control ]; then
    linux_control "$g" "$www"
    echo /linux/vmlinuz > "$g/kernel-path"
  else
    cp "$1" "$g/kernel"
    # Its symbols, for xenctx's report should it triple-fault (dom0-init.sh).
    nm -n "$1" > "$g/symbols" 2>/dev/null || rm -f "$g/symbols"
  fi
  printf '%s' "${2:-}" > "$g/cmdline"
  shift
  [ $# -gt 0 ] && shift
  n=$((n + 1))
done
# The soak's load generator and its diagnostics hook.
mkdir -p "$WORK/extra/bin"
gcc -O2 -static -o "$WORK/extra/bin/soak-client" "$HERE/soak-client.c"
cp "$HERE/soak-diagnostics.sh" "$WORK/extra/bin/soak-diagnostics"
chmod +x "$WORK/extra/bin/soak-diagnostics"
mkdir -p "$WORK/extra/etc/xen/scripts" "$WORK/extra/var/lib"
: > "$WORK/extra/etc/xen/xl.conf"
cp "$HERE/vif-bridge" "$WORK/extra/etc/xen/scripts/vif-bridge"
cp "$HERE/block" "$WORK/extra/etc/xen/scripts/block"
chmod +x "$WORK/extra/etc/xen/scripts/vif-bridge" "$WORK/extra/etc/xen/scripts/block"
cp "$HERE/dom0-init.sh" "$WORK/extra/init"
chmod +x "$WORK/extra/init"
(cd "$WORK/extra" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/extra.cpio.gz"
cat "$CACHE/base.cpio.gz" "$WORK/extra.cpio.gz" > "$WORK/initrd.gz"

timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu "${MORGANA_XEN_CPU:-max}" -smp 2 \
  -m 2048 -display none -serial stdio -monitor none -no-reboot -nic none \
  -kernel "$CACHE/xen" \
  -append "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M loglvl=all guest_loglvl=all" \
  -initrd "$CACHE/vmlinuz console=hvc0 earlyprintk=xen quiet,$WORK/initrd.gz" </dev/null
