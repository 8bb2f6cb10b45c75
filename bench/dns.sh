#!/usr/bin/env bash
# DNS benchmark: dnsperf on loopback against NSD, BIND and Morgana's DNS server, one after
# the other, same zone, same query mix (80 % existing names, 20 % NXDOMAIN), RRL off.
#
#   bench/dns.sh [--quick|--smoke] [SIZES...]     SIZES: records per zone (default 10 10000 1000000)
#
# Morgana is measured through the HOST HARNESS (`morgana-dns`'s example `host-serve`:
# std sockets and an epoll loop (mio), one thread), labelled `morgana_host`, until the dns
# appliance runs on a platform's own UDP; the figures exist early, they are not the
# appliance's. Each server runs one process/thread: NSD `server-count: 1`, BIND `-n 1`.
# Prints name=value lines (also appended to $BENCH_OUT) and a table. Needs root on
# Debian 12 for apt-get (nsd, bind9, dnsperf; scripts/setup.sh installs them).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MODE=full
SIZES=()
for a in "$@"; do
  case $a in
    --quick) MODE=quick ;;
    --smoke) MODE=smoke ;;
    *) SIZES+=("$a") ;;
  esac
done
[ ${#SIZES[@]} -gt 0 ] || SIZES=(10 10000 1000000)
case $MODE in
  full) LEN=8; REPS=3 ;;
  quick) LEN=5; REPS=1 ;;
  smoke) LEN=2; REPS=1; SIZES=(10) ;;
esac
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target/h-bench}
BENCH_OUT=${BENCH_OUT:-$CARGO_TARGET_DIR/bench-results.txt}
SCRATCH=${BENCH_SCRATCH:-/tmp/morgana-bench}/dns-$$
mkdir -p "$SCRATCH" "$(dirname "$BENCH_OUT")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$SCRATCH"; }
trap cleanup EXIT

for tool in nsd named dnsperf dig; do
  command -v "$tool" >/dev/null || { echo "dns bench: $tool missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

result() { echo "$1=$2"; echo "$1=$2" >> "$BENCH_OUT"; }
free_port() { python3 -c 'import socket
while True:
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",0)); p=u.getsockname()[1]
    t=socket.socket(); 
    try:
        t.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass'; }
wait_dns() { # PORT NAME
  for _ in $(seq 1 600); do
    dig +time=1 +tries=1 +short @127.0.0.1 -p "$1" "$2" SOA >/dev/null 2>&1 && dig +time=1 +tries=1 @127.0.0.1 -p "$1" "$2" SOA | grep -q NOERROR && return 0
    sleep 0.2
  done
  return 1
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "== building morgana-dns host harness and zone compiler (release)" >&2
(cd "$ROOT" && cargo build -q --release -p morgana-dns --example host-serve -p morgana-dns-zone --example zone-compile)
SERVE=$CARGO_TARGET_DIR/release/examples/host-serve
COMPILE=$CARGO_TARGET_DIR/release/examples/zone-compile

declare -A R
for n in "${SIZES[@]}"; do
  zone=$SCRATCH/bench.test.zone; queries=$SCRATCH/queries-$n.txt
  # The zone: n records (A records, a few other types), and a query file of 10,000 lines:
  # 80 % names that exist, 20 % that do not.
  python3 - "$zone" "$queries" "$n" <<'PY'
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
  # Build time and archive size of Morgana's zone compiler.
  out=$("$COMPILE" "$SCRATCH/zones-$n.rkyv" "$zone")
  ctime=$(echo "$out" | awk '/compiled in/ {print $(NF-1)}'); asize=$(stat -c %s "$SCRATCH/zones-$n.rkyv")
  result "dns_${n}_zone_compile_s" "$ctime"; result "dns_${n}_archive_bytes" "$asize"
  result "dns_${n}_zonefile_bytes" "$(stat -c %s "$zone")"

  # NSD, one server process, RRL off.
  np=$(free_port); nd=$SCRATCH/nsd-$n; mkdir -p "$nd"; cp "$zone" "$nd/"
  cat > "$nd/nsd.conf" <<EOF
server:
  ip-address: 127.0.0.1@$np
  server-count: 1
  zonesdir: "$nd"
  database: ""
  pidfile: "$nd/nsd.pid"
  xfrdfile: "$nd/xfrd.state"
  zonelistfile: "$nd/zone.list"
  username: ""
  chroot: ""
  logfile: "$nd/nsd.log"
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: bench.test
  zonefile: bench.test.zone
EOF
  s=$(date +%s.%N); nsd -d -c "$nd/nsd.conf" >/dev/null 2>&1 & npid=$!; PIDS+=("$npid")
  # BIND, one worker thread, no recursion.
  bp=$(free_port); bd=$SCRATCH/bind-$n; mkdir -p "$bd"; cp "$zone" "$bd/"
  cat > "$bd/named.conf" <<EOF
options { directory "$bd"; listen-on port $bp { 127.0.0.1; }; listen-on-v6 { none; }; recursion no; minimal-responses no; pid-file "$bd/named.pid"; session-keyfile "$bd/session.key"; dnssec-validation no; };
controls { };
zone "bench.test" { type primary; file "$bd/bench.test.zone"; };
EOF
  named -c "$bd/named.conf" -g -u root -n 1 >"$bd/named.log" 2>&1 & bpid=$!; PIDS+=("$bpid")
  # Morgana through the host harness.
  mp=$(free_port)
  "$SERVE" "127.0.0.1:$mp" "$zone" 2>"$SCRATCH/morgana-$n.log" & mpid=$!; PIDS+=("$mpid")
  for pair in "nsd:$np" "bind:$bp" "morgana_host:$mp"; do
    wait_dns "${pair#*:}" bench.test || { echo "dns bench: ${pair%%:*} does not answer (size $n)" >&2; exit 1; }
  done
  for srv in nsd bind morgana_host; do
    case $srv in nsd) port=$np; pid=$npid ;; bind) port=$bp; pid=$bpid ;; morgana_host) port=$mp; pid=$mpid ;; esac
    q=(); l=()
    for _ in $(seq 1 "$REPS"); do
      o=$(dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -c 4 -l "$LEN" 2>&1)
      q+=("$(echo "$o" | awk '/Queries per second/ {print $4}')")
      l+=("$(echo "$o" | awk '/Average Latency/ {gsub(/s/,"",$4); printf "%.1f", $4*1000000}')")
      lost=$(echo "$o" | awk '/Queries lost/ {print $3}')
    done
    result "dns_${n}_${srv}_qps" "$(median "${q[@]}")"
    result "dns_${n}_${srv}_avg_latency_us" "$(median "${l[@]}")"
    result "dns_${n}_${srv}_lost" "$lost"
    # RSS, and for NSD its child (the serving process).
    rss=$(rss_kib "$pid"); for c in $(pgrep -P "$pid" 2>/dev/null); do rss=$((rss + $(rss_kib "$c"))); done
    result "dns_${n}_${srv}_rss_kib" "$rss"
    R["$n $srv"]="$(median "${q[@]}") q/s, avg $(median "${l[@]}") us, RSS ${rss} KiB"
  done
  result "dns_${n}_morgana_host_over_nsd" "$(awk -v a="${R["$n morgana_host"]%% *}" -v b="${R["$n nsd"]%% *}" 'BEGIN{printf "%.2f", a/b}')"
  for p in "$npid" "$bpid" "$mpid"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  R["$n compile"]="zone compile ${ctime} s, archive ${asize} B"
done

echo
echo "DNS benchmark ($MODE, dnsperf -c 4 -l $LEN, 80 % existing / 20 % NXDOMAIN) — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs"
echo "morgana_host = Morgana's DNS server through the host test harness (std sockets through mio, epoll), not the appliance"
for n in "${SIZES[@]}"; do
  for k in compile nsd bind morgana_host; do printf '%-9s %-13s %s\n' "$n" "$k" "${R["$n $k"]}"; done
done
echo "(name=value lines: $BENCH_OUT)"
