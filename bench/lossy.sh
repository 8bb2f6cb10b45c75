#!/usr/bin/env bash
# TCP over a bad link: a 1 MiB download from static-website's PVH image and from a Linux
# guest (Debian kernel + busybox httpd, bench/linux-guest.sh) under the same QEMU, each
# behind tests' lossy-relay (10 % loss, 1 % corruption, 1 % duplication, 2 % reordering
# in both directions), interleaved, in one run. Prints every download's time, the
# medians and the ratio; every file must arrive byte-identical (a corrupt one fails the
# run).
#
#   bench/lossy.sh [RUNS]              RUNS downloads each way (default 5; seeds 1..RUNS)
#
# Environment:
#   LOSSY_TREE=DIR        build Morgana from another checkout (e.g. an older commit
#                         exported with `git archive`), to measure "before"
#   LOSSY_SMOLTCP=DIR     build Morgana against a patched smoltcp source tree
#                         ([patch.crates-io]), e.g. docs/patches/smoltcp-min-rto.patch
#                         applied to smoltcp 0.14.0 with its RTO floor lowered
#   LOSSY_BYTES=N         file size (default 1048576)
#   LOSSY_RELAY_ARGS="..."  more arguments for lossy-relay, e.g. "--loss 0 --corrupt 0
#                         --duplicate 0 --reorder 0" for the same rig on a clean link
#                         (to check that loss recovery resends nothing there)
#   LOSSY_PCAP=DIR        capture each download on the tap (curl's side of the relay)
#                         into DIR/KIND-SEED.pcap with tcpdump, to see where the time
#                         goes (retransmissions, duplicate ACKs, stalls)
#
# The rig (the same as tests/tests/lossy.rs, which runs a 256 KiB version in CI), all
# inside a network namespace made for the run:
#   guest virtio-net - QEMU -netdev dgram :20000 <-> lossy-relay :20001 | :20002
#     <-> socat :20003 <-> tap mlossy0 10.0.2.2/24 <-> curl;  the guest is 10.0.2.15.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
. "$(dirname "$0")/lib/scratch.sh"

RUNS=${1:-5}
BYTES=${LOSSY_BYTES:-1048576}
TREE=${LOSSY_TREE:-$BENCH_ROOT}
WORK=$BENCH_TARGET/lossy
mkdir -p "$WORK"
export CARGO_TARGET_DIR=$BENCH_TARGET

apt_need socat curl iproute2 cpio gzip
if [ -n "${LOSSY_PCAP:-}" ]; then apt_need tcpdump; fi
echo "lossy: building lossy-relay" >&2
(cd "$BENCH_ROOT" && cargo build --release --quiet -p morgana-tests --bin lossy-relay)
RELAY=$BENCH_TARGET/release/lossy-relay

# Morgana: static-website (from $TREE) with a static address and the file.
echo "lossy: building the PVH image from $TREE" >&2
site=$WORK/site
BENCH_ROOT=$TREE make_scratch_site "$site"
sed -i 's|^\( *\)"net": *Network\(()\)\{0,1\},|\1"net":  Network(ipv4: Static("10.0.2.15/24"), gateway: Some("10.0.2.2")),|' "$site/appliance.ron"
grep -q '10.0.2.15/24' "$site/appliance.ron" || { echo "lossy: cannot set the address in $site/appliance.ron" >&2; exit 1; }
"$RELAY" --make-file "$site/htdocs/lossy.bin" "$BYTES" 42
if [ -n "${LOSSY_SMOLTCP:-}" ]; then
  printf '\n[patch.crates-io]\nsmoltcp = { path = "%s" }\n' "$LOSSY_SMOLTCP" >> "$site/Cargo.toml"
fi
(cd "$site" && MORGANA_TARGET=xen cargo build --release --quiet)
IMAGE=$BENCH_TARGET/release/static-website-site

# Linux: the bench's initrd with the same file in /www.
bash "$BENCH_ROOT/bench/linux-guest.sh" build
LG=$BENCH_CACHE/linux-guest
rm -rf "$WORK/rootfs" && cp -r "$LG/rootfs" "$WORK/rootfs"
cp "$site/htdocs/lossy.bin" "$WORK/rootfs/www/lossy.bin"
(cd "$WORK/rootfs" && find . | cpio -o -H newc 2>/dev/null | gzip -1 > "$WORK/initrd.gz")

NET=(-netdev "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=20000,remote.type=inet,remote.host=127.0.0.1,remote.port=20001" -device "$QEMU_NIC")

# one KIND SEED -> prints the download time in seconds (or "fail")
one() {
  local kind=$1 seed=$2 ns=mlossy$$ port t
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" "$RELAY" --guest 127.0.0.1:20001 127.0.0.1:20000 --host 127.0.0.1:20002 127.0.0.1:20003 --seed "$seed" ${LOSSY_RELAY_ARGS:-} 2>"$WORK/relay.log" &
  ip netns exec "$ns" socat -b 65536 UDP-DATAGRAM:127.0.0.1:20002,bind=127.0.0.1:20003 TUN:10.0.2.2/24,tun-type=tap,tun-name=mlossy0,iff-up,iff-no-pi 2>/dev/null &
  sleep 0.3
  if [ -n "${LOSSY_PCAP:-}" ]; then
    mkdir -p "$LOSSY_PCAP"
    ip netns exec "$ns" tcpdump -U -s 128 -i mlossy0 -w "$LOSSY_PCAP/$kind-$seed.pcap" tcp 2>/dev/null &
  fi
  if [ "$kind" = linux ]; then
    port=80
    ip netns exec "$ns" qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m 128 -kernel "$LG/vmlinuz" -initrd "$WORK/initrd.gz" \
      -append "console=ttyS0 quiet" -serial "file:$WORK/serial-$kind.log" "${NET[@]}" </dev/null >/dev/null 2>&1 &
  else
    port=8080
    ip netns exec "$ns" qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m 32 -kernel "$IMAGE" \
      -serial "file:$WORK/serial-$kind.log" "${NET[@]}" </dev/null >/dev/null 2>&1 &
  fi
  local up=no
  for _ in $(seq 1 600); do
    if [ "$(ip netns exec "$ns" curl -s -m 2 -o /dev/null -w '%{http_code}' "http://10.0.2.15:$port/index.html" 2>/dev/null || true)" = 200 ]; then up=yes; break; fi
    sleep 0.2
  done
  rm -f "$WORK/got.bin"
  if [ $up = yes ]; then
    t=$(ip netns exec "$ns" curl -s -m 600 -o "$WORK/got.bin" -w '%{time_total}' "http://10.0.2.15:$port/lossy.bin" || echo fail)
    cmp -s "$WORK/got.bin" "$site/htdocs/lossy.bin" || t=fail
  else
    t=fail
  fi
  ip netns pids "$ns" | xargs -r kill 2>/dev/null || true
  sleep 0.5
  ip netns del "$ns"
  echo "$t"
}

# A failed download (reset, timed out, or corrupt) is counted and left out of the
# median; any failure makes the run exit with failure once the figures are printed.
m=(); l=(); mfail=0; lfail=0
for s in $(seq 1 "$RUNS"); do
  tm=$(one morgana "$s"); tl=$(one linux "$s")
  echo "lossy: seed $s: morgana $tm s, linux $tl s" >&2
  if [ "$tm" = fail ]; then mfail=$((mfail + 1)); else m+=("$tm"); fi
  if [ "$tl" = fail ]; then lfail=$((lfail + 1)); else l+=("$tl"); fi
done
read -r mm mmin mmax _ <<<"$(stats "${m[@]+"${m[@]}"}")"
read -r lm lmin lmax _ <<<"$(stats "${l[@]+"${l[@]}"}")"
result lossy_bytes "$BYTES"
result lossy_morgana_s "$mm"
result lossy_morgana_range_s "$mmin-$mmax"
result lossy_linux_s "$lm"
result lossy_linux_range_s "$lmin-$lmax"
result lossy_morgana_over_linux "$(ratio "$mm" "$lm")"
result lossy_morgana_failed "$mfail"
result lossy_linux_failed "$lfail"
echo "lossy link, $BYTES B: morgana $mm s ($mmin-$mmax, $mfail of $RUNS failed), linux $lm s ($lmin-$lmax, $lfail of $RUNS failed): $(ratio "$mm" "$lm")x"
if [ $((mfail + lfail)) -gt 0 ]; then
  echo "lossy: $mfail Morgana and $lfail Linux downloads failed or arrived corrupted" >&2
  exit 1
fi
