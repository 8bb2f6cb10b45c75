#!/usr/bin/env bash
# The dns APPLIANCE (appliances/dns, zones compiled in by the build) measured with
# dnsperf, against NSD on the host, in one run:
#   - the Unix process (the host's sockets),
#   - the PVH kernel under QEMU (TCG, user networking, dnsperf through the generated
#     `.qemu` file's hostfwd), with its image size with and without the zone data,
#     against NSD in a Linux guest under the same QEMU (bench/nsd-guest.sh).
#
#   bench/dns-appliance.sh [--quick] [--unix] [RECORDS]   RECORDS: zone size (default 10000)
#                                                       --unix: the Unix process only, and
#     the floor under any server on this loopback: bench/lib/udpecho.c echoing each query
#     as its answer (no DNS work), per datagram and in recvmmsg/sendmmsg batches.
# DNS_PIN=1 puts each server on CPU 1 and dnsperf on CPU 0 (default: the scheduler's choice).
# DNS_PORT=P serves on port P; DNS_BEFORE=BINARY also measures another Unix build of the
# appliance (built with the same DNS_PORT and zone, e.g. at an earlier commit): after/before.
# DNS_PVH_BEFORE=DIR does the same for the PVH kernel: DIR holds another build's `dns`
# image and its `dns.qemu` (same DNS_PORT and zone), run right after this build's.
#
# The same zone and query mix as bench/dns.sh (80 % existing names, 20 % NXDOMAIN), a
# scratch copy of the appliance whose appliance.ron names that zone. The kernel's
# reference is NSD in a Linux guest under the same QEMU (bench/nsd-guest.sh). Prints name=value
# lines (also appended to $BENCH_OUT) and a table. Besides queries per second, each server's
# CPU per query (user + system ticks of the server's processes — NSD's children, the
# whole QEMU process for a guest — over the dnsperf run, divided by the queries answered),
# dnsperf's own CPU per query, the machine's idle share during the run, and the load
# average at the end of its run: on a machine shared with other work the
# q/s of two servers measured seconds apart can differ by 2x, the CPU per query much less.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
ROOT=$BENCH_ROOT
MODE=full; N=10000; UNIX_ONLY=
declare -A E
for a in "$@"; do case $a in --quick) MODE=quick ;; --unix) UNIX_ONLY=1 ;; *) N=$a ;; esac; done
case $MODE in full) LEN=8; REPS=3 ;; quick) LEN=4; REPS=1 ;; esac
export CARGO_TARGET_DIR=$BENCH_TARGET
BENCH_OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench-results.txt}
SCRATCH=${BENCH_SCRATCH:-/tmp/morgana-bench}/dns-appliance-$$
mkdir -p "$SCRATCH" "$(dirname "$BENCH_OUT")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$SCRATCH"; }
trap cleanup EXIT
for tool in nsd dnsperf dig qemu-system-x86_64 size gcc taskset; do
  command -v "$tool" >/dev/null || { echo "dns-appliance bench: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
result() { echo "$1=$2"; echo "$1=$2" >> "$BENCH_OUT"; }
dual_port() { python3 -c 'import socket
while True:
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",0)); p=u.getsockname()[1]
    t=socket.socket()
    try:
        t.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass'; }
wait_dns() { # PORT SECONDS
  for _ in $(seq 1 $(( $2 * 5 ))); do
    dig +time=1 +tries=1 @127.0.0.1 -p "$1" bench.test SOA 2>/dev/null | grep -q NOERROR && return 0
    sleep 0.2
  done
  return 1
}
loaded_bytes() { size -A "$1" | awk '$1 ~ /^\.(text|rodata|data|note|gcc_except|eh_frame|init|fini|got|tdata)/ {s+=$2} END{print s+0}'; }
# cpu_ticks PID -> user+system clock ticks of PID and its descendants (NSD's server is a
# child of its main process; QEMU's threads count in its own). Fields after the `(comm)`,
# which may hold spaces ("nsd: server 1").
cpu_ticks() {
  local t p
  t=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}')
  t=${t:-0}
  for p in $(pgrep -P "$1" 2>/dev/null); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}
# pin_tree PID CPUS: PID, its threads and its descendants onto CPUS.
pin_tree() {
  local c
  taskset -acp "$2" "$1" >/dev/null 2>&1 || true
  for c in $(pgrep -P "$1" 2>/dev/null); do pin_tree "$c" "$2"; done
}
# idle_ticks -> "idle total" clock ticks of the whole machine (/proc/stat).
idle_ticks() { awk '/^cpu / {print $5 + $6, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat; }
# DNS_PIN=1: each server (its processes and threads) on CPU 1 and dnsperf on CPU 0, so
# that neither takes the other's CPU; by default the scheduler places both.
PIN=${DNS_PIN:-}
[ -n "$PIN" ] && [ "$(nproc)" -lt 2 ] && { echo "dns-appliance bench: DNS_PIN needs 2 CPUs" >&2; exit 1; }
perf() { # PORT SERVER_PID -> "qps avg_us lost cpu_us_per_query load client_cpu_us_per_query idle_pct" (medians over REPS)
  local q=() l=() c=() d=() i=() lost=0 o t0 t1 n i0 a0 i1 a1 hz
  hz=$(getconf CLK_TCK)
  [ -n "$PIN" ] && pin_tree "$2" 1
  for _ in $(seq 1 "$REPS"); do
    t0=$(cpu_ticks "$2"); read -r i0 a0 < <(idle_ticks)
    # dnsperf's own CPU time: `times` in a subshell reports its children's (the second line).
    o=$( (${PIN:+taskset -c 0} dnsperf -s 127.0.0.1 -p "$1" -d "$SCRATCH/queries.txt" -c 4 -l "$LEN" 2>&1; times) )
    t1=$(cpu_ticks "$2"); read -r i1 a1 < <(idle_ticks)
    q+=("$(echo "$o" | awk '/Queries per second/ {print $4}')")
    l+=("$(echo "$o" | awk '/Average Latency/ {gsub(/s/,"",$4); printf "%.1f", $4*1000000}')")
    n=$(echo "$o" | awk '/Queries completed/ {print $3}')
    c+=("$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="${n:-0}" 'BEGIN{ if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "nan" }')")
    d+=("$(echo "$o" | tail -1 | awk -v n="${n:-0}" 'function s(x, m) { m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x); return m * 60 + x }
      { if (n > 0) printf "%.2f", (s($1) + s($2)) * 1e6 / n; else print "nan" }')")
    i+=("$(awk -v i=$((i1 - i0)) -v a=$((a1 - a0)) 'BEGIN{ if (a > 0) printf "%.0f", i * 100 / a; else print "nan" }')")
    lost=$(echo "$o" | awk '/Queries lost/ {print $3}')
  done
  echo "$(median "${q[@]}") $(median "${l[@]}") $lost $(median "${c[@]}") $(cut -d' ' -f1 /proc/loadavg) $(median "${d[@]}") $(median "${i[@]}")"
}

# The zone and the queries (bench/dns.sh's generator).
python3 - "$SCRATCH/bench.test.zone" "$SCRATCH/queries.txt" "$N" <<'PY'
import random, sys
zone, qfile, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(n)
with open(zone, "w") as f:
    f.write("$ORIGIN bench.test.\n$TTL 3600\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n  NS ns1\n  NS ns2\nns1 A 192.0.2.53\nns2 A 192.0.2.54\n")
    for i in range(max(n - 5, 1)):
        if i % 10 == 9:
            f.write(f"h{i} AAAA 2001:db8::{i % 65536:x}\n")
        elif i % 10 == 8:
            f.write(f"h{i} TXT \"record {i}\"\n")
        else:
            f.write(f"h{i} A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")
names = max(n - 5, 1)
with open(qfile, "w") as f:
    for k in range(10000):
        if rnd.random() < 0.8:
            i = rnd.randrange(names)
            t = "AAAA" if i % 10 == 9 else ("TXT" if i % 10 == 8 else "A")
            f.write(f"h{i}.bench.test {t}\n")
        else:
            f.write(f"nx{rnd.randrange(10**9)}.bench.test A\n")
PY

# A scratch copy of the appliance: its own one-member workspace depending on this
# checkout's crates by path, serving the bench zone on a port of its own.
PORT=${DNS_PORT:-$(dual_port)}   # DNS_PORT: a fixed port (a DNS_BEFORE build serves the port it was built with)
APP=$SCRATCH/app
cp -r "$ROOT/appliances/dns" "$APP"
cp "$SCRATCH/bench.test.zone" "$APP/zones/"
sed -i "s|zones: \[\"zones/example.test.zone\"\]|zones: [\"zones/bench.test.zone\"]|; s|port: 5353|port: $PORT|" "$APP/appliance.ron"
python3 - "$ROOT" "$APP" <<'PY'
import re, sys
root, app = sys.argv[1], sys.argv[2]
ws = open(f"{root}/Cargo.toml").read()
paths = dict(re.findall(r'^([a-z0-9-]+) = \{ path = "([^"]+)" \}', ws, re.M))
out = []
for l in open(f"{app}/Cargo.toml").read().splitlines():
    m = re.match(r'^([a-z0-9-]+)\.workspace = true', l) or re.match(r'^([a-z0-9-]+) = \{ workspace = true(.*)$', l)
    if m and m.group(1) in paths:
        rest = m.group(2) if m.lastindex == 2 else " }"
        l = f'{m.group(1)} = {{ path = "{root}/{paths[m.group(1)]}"{rest}'
    l = l.replace("version.workspace = true", 'version = "0.1.0"').replace("edition.workspace = true", 'edition = "2024"').replace("license.workspace = true", "")
    out.append(l)
profiles = ws[ws.index("\n[profile"):]
open(f"{app}/Cargo.toml", "w").write("\n".join(out) + "\n\n[workspace]\n" + profiles)
PY
cp "$ROOT/Cargo.lock" "$APP/"

echo "== building the dns appliance with a $N-record zone (Unix, then PVH)" >&2
# Target directories that persist between runs: the dependencies are compiled once.
UT=$CARGO_TARGET_DIR/dns-appliance-unix; XT=$CARGO_TARGET_DIR/dns-appliance-xen
rm -rf "$UT"/release/build/dns-* "$XT"/release/build/dns-*
s=$(now); (cd "$APP" && cargo build -q --release --target-dir "$UT"); result "dns_app_${N}_unix_build_s" "$(elapsed "$s")"
if [ -z "$UNIX_ONLY" ]; then
  s=$(now); (cd "$APP" && MORGANA_TARGET=xen cargo build -q --release --target-dir "$XT"); result "dns_app_${N}_xen_build_s" "$(elapsed "$s")"
  IMAGE=$XT/release/dns
  ARCHIVE=$(stat -c %s "$(ls "$XT"/release/build/dns-*/out/server.rkyv | head -1)")
  LOADED=$(loaded_bytes "$IMAGE")
  result "dns_app_${N}_pvh_loaded_bytes" "$LOADED"
  result "dns_app_${N}_pvh_zone_archive_bytes" "$ARCHIVE"
  result "dns_app_${N}_pvh_loaded_without_zones_bytes" "$((LOADED - ARCHIVE))"
fi

# NSD on the host, one server process, RRL off.
NP=$(dual_port); ND=$SCRATCH/nsd; mkdir -p "$ND"; cp "$SCRATCH/bench.test.zone" "$ND/"
cat > "$ND/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@$NP
  server-count: 1
  zonesdir: "$ND"
  database: ""
  pidfile: "$ND/nsd.pid"
  xfrdfile: "$ND/xfrd.state"
  zonelistfile: "$ND/zone.list"
  username: ""
  chroot: ""
  logfile: "$ND/nsd.log"
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: bench.test
  zonefile: bench.test.zone
EOF
nsd -d -c "$ND/nsd.conf" >/dev/null 2>&1 & NPID=$!; PIDS+=("$NPID")
wait_dns "$NP" 60 || { echo "dns-appliance bench: NSD does not answer" >&2; exit 1; }
read -r nq nl nlost nc nload nd ni <<<"$(perf "$NP" "$NPID")"
result "dns_app_${N}_nsd_qps" "$nq"; result "dns_app_${N}_nsd_avg_latency_us" "$nl"
result "dns_app_${N}_nsd_cpu_us_per_query" "$nc"; result "dns_app_${N}_nsd_load" "$nload"
result "dns_app_${N}_nsd_client_cpu_us_per_query" "$nd"; result "dns_app_${N}_nsd_idle_pct" "$ni"

# The Unix appliance.
"$UT/release/dns" >"$SCRATCH/unix.log" 2>&1 & UPID=$!; PIDS+=("$UPID")
wait_dns "$PORT" 30 || { echo "dns-appliance bench: the Unix appliance does not answer" >&2; exit 1; }
# Another process on a DNS_PORT would answer in its place.
kill -0 "$UPID" 2>/dev/null || { echo "dns-appliance bench: the Unix appliance exited:" >&2; cat "$SCRATCH/unix.log" >&2; exit 1; }
read -r uq ul ulost uc uload ud ui <<<"$(perf "$PORT" "$UPID")"
result "dns_app_${N}_unix_qps" "$uq"; result "dns_app_${N}_unix_avg_latency_us" "$ul"; result "dns_app_${N}_unix_lost" "$ulost"
result "dns_app_${N}_unix_cpu_us_per_query" "$uc"; result "dns_app_${N}_unix_load" "$uload"
result "dns_app_${N}_unix_client_cpu_us_per_query" "$ud"; result "dns_app_${N}_unix_idle_pct" "$ui"
# Server CPU per query, NSD's over ours: queries per server CPU-second, ours over NSD's
# (less sensitive than q/s to what else the machine runs).
result "dns_app_${N}_unix_over_nsd_per_cpu" "$(ratio "$nc" "$uc")"
result "dns_app_${N}_unix_rss_kib" "$(awk '/VmRSS/ {print $2}' /proc/$UPID/status)"
result "dns_app_${N}_unix_over_nsd" "$(ratio "$uq" "$nq")"
kill "$UPID"; wait "$UPID" 2>/dev/null || true

# DNS_BEFORE=path: another build of the Unix appliance (the same zone and port, e.g. from
# an earlier commit), measured in the same run for a before/after ratio.
if [ -n "${DNS_BEFORE:-}" ]; then
  "$DNS_BEFORE" >"$SCRATCH/before.log" 2>&1 & BPID=$!; PIDS+=("$BPID")
  wait_dns "$PORT" 30 || { echo "dns-appliance bench: $DNS_BEFORE does not answer" >&2; exit 1; }
  kill -0 "$BPID" 2>/dev/null || { echo "dns-appliance bench: $DNS_BEFORE exited:" >&2; cat "$SCRATCH/before.log" >&2; exit 1; }
  read -r bq bl blost bc bload bd bi <<<"$(perf "$PORT" "$BPID")"
  result "dns_app_${N}_before_qps" "$bq"; result "dns_app_${N}_before_over_nsd" "$(ratio "$bq" "$nq")"
  result "dns_app_${N}_unix_over_before" "$(ratio "$uq" "$bq")"
  kill "$BPID"; wait "$BPID" 2>/dev/null || true
fi
# --unix: the floor under any server on this machine's loopback, measured the same way:
# bench/lib/udpecho.c sends each query back as its answer (dnsperf takes it), doing no DNS
# work at all; once with one recvfrom/sendto per datagram (NSD's calls), once with
# recvmmsg/sendmmsg batches of up to 16 (the Unix platform's).
if [ -n "$UNIX_ONLY" ]; then
  gcc -O2 -o "$SCRATCH/udpecho" "$ROOT/bench/lib/udpecho.c"
  for mode in plain mmsg; do
    EP=$(dual_port)
    "$SCRATCH/udpecho" "$EP" ${mode/plain/} & EPID=$!; PIDS+=("$EPID")
    wait_dns "$EP" 10 || { echo "dns-appliance bench: udpecho $mode does not answer" >&2; exit 1; }
    read -r eq el elost ec eload ed ei <<<"$(perf "$EP" "$EPID")"
    result "dns_app_${N}_echo_${mode}_qps" "$eq"; result "dns_app_${N}_echo_${mode}_cpu_us_per_query" "$ec"
    result "dns_app_${N}_echo_${mode}_client_cpu_us_per_query" "$ed"; result "dns_app_${N}_echo_${mode}_idle_pct" "$ei"
    result "dns_app_${N}_echo_${mode}_over_nsd" "$(ratio "$eq" "$nq")"; result "dns_app_${N}_echo_${mode}_load" "$eload"
    E[$mode]="$eq q/s ($ec us CPU/query, dnsperf $ed us/query, idle $ei %; $(ratio "$eq" "$nq")x NSD; load $eload)"
    kill "$EPID"; wait "$EPID" 2>/dev/null || true
  done
  echo
  echo "dns appliance, Unix ($MODE, $N records, dnsperf -c 4 -l $LEN${PIN:+, server on CPU 1 and dnsperf on CPU 0}) — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs"
  printf '%-22s %s\n' "NSD (host)" "$nq q/s ($nc us CPU/query, dnsperf $nd us/query, idle $ni %; load $nload)"
  printf '%-22s %s\n' "Morgana Unix" "$uq q/s ($uc us CPU/query, dnsperf $ud us/query, idle $ui %; $(ratio "$uq" "$nq")x NSD, per CPU $(ratio "$nc" "$uc")x; load $uload)"
  [ -n "${bq:-}" ] && printf '%-22s %s\n' "before" "$bq q/s ($bc us CPU/query, dnsperf $bd us/query, idle $bi %; $(ratio "$bq" "$nq")x NSD, after/before $(ratio "$uq" "$bq"); load $bload)"
  printf '%-22s %s\n' "echo, recvfrom/sendto" "${E[plain]}"
  printf '%-22s %s\n' "echo, mmsg batches" "${E[mmsg]}"
  exit 0
fi

# The PVH kernel under QEMU, with the generated deployment file's arguments.
# TCG alone in place of the file's `-accel kvm -accel tcg` (this machine's nested KVM
# cannot run the guest; docs/deploy.md), as scripts/morgana-run does here.
mapfile -t QARGS < <(grep -v '^#' "$XT/release/dns.qemu" | grep -v '^$' | sed '/^-accel$/{N;d}')
QARGS=(-accel tcg "${QARGS[@]}")
(cd "$XT/release" && exec qemu-system-x86_64 "${QARGS[@]}" -kernel dns >"$SCRATCH/pvh.log" 2>&1) & QPID=$!; PIDS+=("$QPID")
wait_dns "$PORT" 120 || { echo "dns-appliance bench: the PVH appliance does not answer" >&2; cat "$SCRATCH/pvh.log" >&2; exit 1; }
read -r pq pl plost pc pload _ _ <<<"$(perf "$PORT" "$QPID")"
result "dns_app_${N}_pvh_qemu_qps" "$pq"; result "dns_app_${N}_pvh_qemu_avg_latency_us" "$pl"; result "dns_app_${N}_pvh_qemu_lost" "$plost"
result "dns_app_${N}_pvh_qemu_cpu_us_per_query" "$pc"; result "dns_app_${N}_pvh_load" "$pload"
kill "$QPID"; wait "$QPID" 2>/dev/null || true

# DNS_PVH_BEFORE=DIR: another build of the PVH image (its `dns` and `dns.qemu`), same flags.
if [ -n "${DNS_PVH_BEFORE:-}" ]; then
  mapfile -t BARGS < <(grep -v '^#' "$DNS_PVH_BEFORE/dns.qemu" | grep -v '^$' | sed '/^-accel$/{N;d}')
  (cd "$DNS_PVH_BEFORE" && exec qemu-system-x86_64 -accel tcg "${BARGS[@]}" -kernel dns >"$SCRATCH/pvh-before.log" 2>&1) & BQPID=$!; PIDS+=("$BQPID")
  wait_dns "$PORT" 120 || { echo "dns-appliance bench: $DNS_PVH_BEFORE does not answer" >&2; cat "$SCRATCH/pvh-before.log" >&2; exit 1; }
  read -r pbq pbl pblost pbc pbload _ _ <<<"$(perf "$PORT" "$BQPID")"
  result "dns_app_${N}_pvh_before_qemu_qps" "$pbq"; result "dns_app_${N}_pvh_before_qemu_cpu_us_per_query" "$pbc"
  result "dns_app_${N}_pvh_over_before" "$(ratio "$pq" "$pbq")"; result "dns_app_${N}_pvh_before_load" "$pbload"
  kill "$BQPID"; wait "$BQPID" 2>/dev/null || true
fi

# The reference under the same QEMU: NSD in a Linux guest (bench/nsd-guest.sh: Debian's
# kernel, the host's nsd and its libraries in an initramfs), same zone, same flags.
GP=$(dual_port)
GPID=$(bash "$ROOT/bench/nsd-guest.sh" boot "$SCRATCH/bench.test.zone" bench.test "$GP" 256 "$SCRATCH/nsd-guest.log")
PIDS+=("$GPID")
wait_dns "$GP" 180 || { echo "dns-appliance bench: NSD in the Linux guest does not answer" >&2; cat "$SCRATCH/nsd-guest.log" >&2; exit 1; }
read -r gq gl glost gc gload _ _ <<<"$(perf "$GP" "$GPID")"
result "dns_app_${N}_nsd_guest_qemu_qps" "$gq"; result "dns_app_${N}_nsd_guest_qemu_avg_latency_us" "$gl"; result "dns_app_${N}_nsd_guest_qemu_lost" "$glost"
result "dns_app_${N}_nsd_guest_qemu_cpu_us_per_query" "$gc"; result "dns_app_${N}_nsd_guest_load" "$gload"
result "dns_app_${N}_pvh_over_nsd_guest_per_cpu" "$(ratio "$gc" "$pc")"
result "dns_app_${N}_pvh_over_nsd_guest" "$(ratio "$pq" "$gq")"
kill "$GPID"; wait "$GPID" 2>/dev/null || true

echo
echo "dns appliance ($MODE, $N records, dnsperf -c 4 -l $LEN, 80 % existing / 20 % NXDOMAIN) — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs"
printf '%-22s %s\n' "NSD (host)" "$nq q/s, avg $nl us, $nc us CPU/query (load $nload)"
printf '%-22s %s\n' "Morgana Unix" "$uq q/s, avg $ul us, lost $ulost, $uc us CPU/query (load $uload) ($(ratio "$uq" "$nq")x NSD; per CPU $(ratio "$nc" "$uc")x)"
printf '%-22s %s\n' "NSD in Linux (QEMU TCG)" "$gq q/s, avg $gl us, lost $glost, $gc us QEMU CPU/query (load $gload)"
printf '%-22s %s\n' "Morgana PVH (QEMU TCG)" "$pq q/s, avg $pl us, lost $plost, $pc us QEMU CPU/query (load $pload) ($(ratio "$pq" "$gq")x NSD in a Linux guest; per CPU $(ratio "$gc" "$pc")x)"
[ -n "${DNS_PVH_BEFORE:-}" ] && printf '%-22s %s\n' "PVH before ($DNS_PVH_BEFORE)" "$pbq q/s, avg $pbl us, lost $pblost, $pbc us QEMU CPU/query (load $pbload) ($(ratio "$pbq" "$gq")x NSD in a Linux guest; per CPU $(ratio "$gc" "$pbc")x; after/before $(ratio "$pq" "$pbq")x)"
printf '%-22s %s\n' "PVH image" "$LOADED B loaded, $ARCHIVE B of zone data, $((LOADED - ARCHIVE)) B without"
echo "(name=value lines: $BENCH_OUT)"
