#!/usr/bin/env bash
# Installs what Morgana's tests need on Debian 12. Run as root (CI is root).
#
# Packages:
#   curl               the HTTP client the end-to-end tests drive appliances with
#   gcc                the linker driver rustc calls (cc)
#   qemu-system-x86    boots the PVH kernels; version 10 from bookworm-backports, which
#                      Xen-under-QEMU needs (7.2 from bookworm crashes dom0)
#   iproute2           network namespaces and tap devices for the direct-stack tests;
#                      `ss`, with which scripts/morgana-run finds who holds a host port
#   iputils-ping       pings the direct stack across a tap (ICMP echo)
#   udhcpd             busybox's DHCP server: the direct stack's DHCP test leases from it
#   binutils           nm: tests check which code a kernel image carries
#   socat              the real UDP client of the UDP echo tests (and bench/udp-echo.sh's
#                      reference echo server)
#   radvd              sends the router advertisements from which the direct stack takes
#                      its IPv6 address (SLAAC) in the tap tests
#   cpio, gzip, xz-utils  the Xen harness (tests/xen) builds dom0's initramfs and unpacks modules
#   redis-server, redis-tools  the peer of the Redis-protocol server: its differential tests
#                      compare replies with redis-server and redis-cli; bench/kv.sh runs
#                      redis-benchmark against both
#   nsd                the reference authoritative DNS server of morgana-dns's differential
#                      test (components/dns/tests/differential.rs) and of bench/dns.sh
#   bind9, dnsperf     bench/dns.sh: BIND is the second reference, dnsperf the load generator
#   bind9-dnsutils, knot-dnsutils  dig and kdig, to query the DNS server by hand and in tests
#   libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients
#                      the libvirt test (tests/tests/deploy.rs) runs a private libvirtd
#                      (tests/libvirt/private-libvirtd.sh), `virsh` and `virt-xml-validate`;
#                      from bookworm-backports (11.x), which matches QEMU 10 and accepts
#                      <interface type='user'><backend type='passt'/> (bookworm's 9.0 does not)
#   passt              libvirt's user-mode network with <portForward> (SLIRP has none in XML)
#   umoci, skopeo      read back the OCI image layout scripts/oci-image writes for urunc
#   openssl            makes the TLS tests' certificates at test time; `openssl s_client` is
#                      one of the clients the TLS component is tested against
#   testssl.sh         audits the TLS component (protocols, ciphers, known vulnerabilities)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/setup.sh installs Debian packages: run it as root (or with sudo)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# bookworm-backports, from the same mirror as the machine's own bookworm sources (so
# this script names no mirror itself).
add_backports() {
  if grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return
  fi
  local uri=""
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ {u=$2} /^Suites:.*bookworm( |$)/ {if (u != "") {print u; exit}}' "$f")
    [ -n "$uri" ] && break
  done
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1 == "deb" && $0 ~ / bookworm / {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  if [ -z "$uri" ]; then
    echo "setup: cannot find this machine's bookworm apt source to add bookworm-backports" >&2
    exit 1
  fi
  echo "deb $uri bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
}

add_backports
apt-get update -qq
apt-get install -y -qq --no-install-recommends curl gcc binutils iproute2 iputils-ping udhcpd socat radvd cpio gzip xz-utils \
  redis-server redis-tools nsd bind9 dnsperf bind9-dnsutils knot-dnsutils \
  openssl testssl.sh >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86 >/dev/null
apt-get install -y -qq --no-install-recommends -t bookworm-backports \
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients passt umoci skopeo >/dev/null
echo "setup: $(qemu-system-x86_64 --version | head -1)"
