#!/usr/bin/env bash
# Boots Debian's Xen 4.17 under QEMU (TCG) with a Linux dom0 that runs PVH guests one
# after the other and reports each one's console output and shutdown reason on the
# serial line. One Xen boot serves several guests (a boot costs ~20-60 s under TCG).
#
#   tests/xen/run-guest.sh KERNEL_IMAGE GUEST_CMDLINE [KERNEL_IMAGE GUEST_CMDLINE]...
#
# Output (stdout, QEMU's serial) contains, for guest N (0, 1, ...) in order:
#   ===MORGANA-XEN-CONSOLE-BEGIN-N=== ... ===MORGANA-XEN-CONSOLE-END-N===   its PV console
#   ===MORGANA-XEN-SHUTDOWN-N=<reason>===   poweroff | crash | reboot | ... | timeout | gone
# and finally ===MORGANA-XEN-DONE===.
#
# Packages are fetched with `apt-get download` into $MORGANA_XEN_CACHE (default
# ~/.cache/morgana-xen) and unpacked there; nothing is installed. Needs cpio, gzip and
# qemu-system-x86_64 10 (scripts/setup.sh). See shared notes: xen-under-qemu.md.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: run-guest.sh KERNEL_IMAGE GUEST_CMDLINE [KERNEL_IMAGE GUEST_CMDLINE]..." >&2
  exit 2
fi
CACHE=${MORGANA_XEN_CACHE:-$HOME/.cache/morgana-xen}
TIMEOUT=${MORGANA_XEN_TIMEOUT:-180}
HERE=$(cd "$(dirname "$0")" && pwd)

mkdir -p "$CACHE/debs"
# One fetch at a time (tests may run the harness in parallel).
(
  flock 9
  if [ ! -f "$CACHE/root/.complete" ]; then
    "$HERE/fetch.sh" "$CACHE" >&2
  fi
) 9>"$CACHE/.lock"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/morgana-xen.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The per-run part of the initramfs: /init, the guest images and their command lines,
# appended as a second cpio archive to the cached base (the kernel unpacks concatenated
# archives).
n=0
while [ $# -gt 0 ]; do
  mkdir -p "$WORK/extra/guest/$n"
  cp "$1" "$WORK/extra/guest/$n/kernel"
  printf '%s' "${2:-}" > "$WORK/extra/guest/$n/cmdline"
  shift
  [ $# -gt 0 ] && shift
  n=$((n + 1))
done
mkdir -p "$WORK/extra/etc/xen"
: > "$WORK/extra/etc/xen/xl.conf"
cp "$HERE/dom0-init.sh" "$WORK/extra/init"
chmod +x "$WORK/extra/init"
(cd "$WORK/extra" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/extra.cpio.gz"
cat "$CACHE/base.cpio.gz" "$WORK/extra.cpio.gz" > "$WORK/initrd.gz"

timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 2 \
  -m 2048 -display none -serial stdio -monitor none -no-reboot -nic none \
  -kernel "$CACHE/xen" \
  -append "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M loglvl=all guest_loglvl=all" \
  -initrd "$CACHE/vmlinuz console=hvc0 earlyprintk=xen quiet,$WORK/initrd.gz" </dev/null
