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
. "$(dirname "$0")/lib/guest-initrd.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=$BENCH_CACHE/nsd-guest
mkdir -p "$CACHE"

build() {
  command -v nsd >/dev/null || { echo "nsd-guest: nsd missing (scripts/setup.sh installs it)" >&2; exit 1; }
  local nsd; nsd=$(command -v nsd)
  # Rebuilt when the host's nsd changes (a Debian update).
  local stamp; stamp=$(sha256sum "$nsd" | cut -c1-16)
  if [ -f "$CACHE/initrd-$stamp.gz" ] && [ -f "$CACHE/vmlinuz" ]; then return 0; fi
  rm -rf "$CACHE"/initrd-*.gz
  local r=$CACHE/rootfs
  guest_root "$r"
  cp "$GUEST_KERNEL" "$CACHE/vmlinuz"
  mkdir -p "$r/zone"
  guest_add_program "$r" "$nsd"
  guest_init "$r" <<'INIT'
/usr/sbin/nsd -d -c /zone/nsd.conf & pid=$!
sleep 2
if kill -0 $pid; then echo NSD-READY; else echo NSD-FAILED; cat /tmp/nsd.log; fi
while true; do sleep 1000; done
INIT
  guest_pack "$r" "$CACHE/initrd-$stamp.gz"
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
