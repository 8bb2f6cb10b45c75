#!/usr/bin/env bash
# Boots Debian's Xen 4.17 under QEMU (TCG) with a Linux dom0 that runs PVH guests one
# after the other and reports each one's console output and shutdown reason on the
# serial line. One Xen boot serves several guests (a boot costs ~20-60 s under TCG).
#
#   tests/xen/run-guest.sh GUEST [GUEST]...
#   GUEST = [--xl CONFIG] [--check SCRIPT] KERNEL_IMAGE GUEST_CMDLINE
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
# Packages are fetched with `apt-get download` into $MORGANA_XEN_CACHE (default
# ~/.cache/morgana-xen) and unpacked there; nothing is installed. Needs cpio, gzip and
# qemu-system-x86_64 10 (scripts/setup.sh). How and why it works: docs/xen-under-qemu.md.
set -euo pipefail

usage() {
  echo "usage: run-guest.sh [--xl CONFIG] [--check SCRIPT] KERNEL_IMAGE GUEST_CMDLINE [...]" >&2
  exit 2
}
[ $# -ge 1 ] || usage
CACHE=${MORGANA_XEN_CACHE:-$HOME/.cache/morgana-xen}
TIMEOUT=${MORGANA_XEN_TIMEOUT:-360}
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
n=0
while [ $# -gt 0 ]; do
  g=$WORK/extra/guest/$n
  mkdir -p "$g"
  while [ $# -gt 0 ]; do
    case "$1" in
      --xl) [ $# -ge 2 ] || usage; cp "$2" "$g/config.xl"; shift 2 ;;
      --check) [ $# -ge 2 ] || usage; cp "$2" "$g/check"; shift 2 ;;
      --*) echo "run-guest.sh: unknown option $1" >&2; usage ;;
      *) break ;;
    esac
  done
  [ $# -ge 1 ] || usage
  cp "$1" "$g/kernel"
  printf '%s' "${2:-}" > "$g/cmdline"
  shift
  [ $# -gt 0 ] && shift
  n=$((n + 1))
done
mkdir -p "$WORK/extra/etc/xen/scripts" "$WORK/extra/var/lib"
: > "$WORK/extra/etc/xen/xl.conf"
cp "$HERE/vif-bridge" "$WORK/extra/etc/xen/scripts/vif-bridge"
chmod +x "$WORK/extra/etc/xen/scripts/vif-bridge"
cp "$HERE/dom0-init.sh" "$WORK/extra/init"
chmod +x "$WORK/extra/init"
(cd "$WORK/extra" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/extra.cpio.gz"
cat "$CACHE/base.cpio.gz" "$WORK/extra.cpio.gz" > "$WORK/initrd.gz"

timeout "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg,thread=multi -cpu max -smp 2 \
  -m 2048 -display none -serial stdio -monitor none -no-reboot -nic none \
  -kernel "$CACHE/xen" \
  -append "console=com1 com1=115200,8n1 dom0_mem=512M,max:512M loglvl=all guest_loglvl=all" \
  -initrd "$CACHE/vmlinuz console=hvc0 earlyprintk=xen quiet,$WORK/initrd.gz" </dev/null
