#!/usr/bin/env bash
# The TLS component's benchmarks, each beside its reference in the same run:
#
#   bench/tls.sh [--quick] [size] [unix] [kernel]
#
#   size  image size growth for TLS: appliances/static-website without content, plain HTTP
#         and HTTPS (bench/lib/tls-wiring.rs, the wiring the catalog will generate), as a
#         Unix process and as a PVH kernel; then boots the HTTPS kernel under QEMU (-cpu
#         max: RDRAND) and fetches a page over HTTPS, and boots it without RDRAND to see it
#         refuse to start.                                   goal: growth <= 350 KiB (kernel)
#   unix  components/tls/examples/https.rs (HTTP over the TLS component over host sockets)
#         against nginx (one worker), same certificate (ECDSA P-256) and files:
#         full handshakes/s, resumed handshakes/s (TLS 1.2 tickets), 600 B and 100 KB
#         requests/s over keep-alive HTTPS (wrk); the two servers alternate, 3 repetitions
#         (1 with --quick), medians.                            goal: >= 1.0x nginx each
#         Full handshakes, the closest figure, are measured apart: 8 interleaved pairs
#         (2 with --quick), the order turning each pair (M N, N M, M N, ...), and the
#         ratio is the median of the pairs' ratios of wall-clock rates (the goal's
#         measure); beside it the server's and the clients' CPU time per handshake.
#   kernel the HTTPS kernel (the same wiring, with the bench files) under QEMU against a
#         Linux guest (Debian's kernel, bench/linux-guest.sh's initrd plus the host's
#         nginx-light and its libraries) serving the same files with the same certificate,
#         same QEMU flags (-accel tcg -cpu max); one guest runs at a time (the other is
#         stopped): full and resumed handshakes/s, 600 B and 100 KB keep-alive req/s.
#                                                               goal: >= 2x the Linux guest
#
# Prints name=value lines and a table with ratios. Handshake rates come from several
# `openssl s_time` processes at once (one is not enough: the client is half the cost);
# besides connections per second of wall time, the server's own CPU time is read from
# /proc, and handshakes per server CPU-second is the fairer figure on a 2-core machine
# where the clients compete with the server.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
. "$HERE/lib/scratch.sh"
. "$HERE/lib/guest-initrd.sh"

MODE=full
FIGS=()
for a in "$@"; do
  case $a in
    --quick) MODE=quick ;;
    size|unix|kernel) FIGS+=("$a") ;;
    *) echo "usage: bench/tls.sh [--quick] [size] [unix] [kernel]" >&2; exit 2 ;;
  esac
done
[ ${#FIGS[@]} -eq 0 ] && FIGS=(size unix kernel)
case $MODE in
  full)  RUN_S=6; CLIENTS=3; REPS=3; PAIRS=8 ;;
  quick) RUN_S=4; CLIENTS=2; REPS=1; PAIRS=2 ;;
esac
need=()
for t in wrk:wrk curl:curl openssl:openssl nginx:nginx-light python3:python3 cpio:cpio; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[ ${#need[@]} -eq 0 ] || apt_need "${need[@]}"
SCRATCH=${BENCH_SCRATCH:-/tmp/morgana-bench}/tls
mkdir -p "$SCRATCH"
export CARGO_TARGET_DIR=$BENCH_TARGET
declare -A R
PIDS=()
NGINX_PID=
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && { kill "$p"; kill -CONT "$p"; } 2>/dev/null || true; done
  [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- certificates (made here, never committed) -------------------------------------------
CERTS=$SCRATCH/certs
make_certs() {
  [ -f "$CERTS/tls.crt" ] && return
  mkdir -p "$CERTS"
  (cd "$CERTS"
   openssl ecparam -name prime256v1 -genkey -noout -out ca.key
   openssl req -x509 -new -key ca.key -sha256 -days 365 -subj '/CN=Morgana bench CA' -out ca.pem
   openssl ecparam -name prime256v1 -genkey -noout -out tls.key
   openssl req -new -key tls.key -subj '/CN=localhost' -out tls.csr
   printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > tls.ext
   openssl x509 -req -in tls.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -sha256 -extfile tls.ext -out tls.crt 2>/dev/null)
}

# ---- size --------------------------------------------------------------------------------
loaded_bytes() { size -A "$1" | awk '$1 ~ /^\.(text|rodata|data|note|gcc_except|eh_frame|init|fini|got|tdata|morgana)/ {s+=$2} END{print s+0}'; }
# make_https DIR: a scratch static-website without content whose wiring is tls-wiring.rs.
make_https() {
  local dir=$1
  make_scratch_site "$dir"
  rm -rf "$dir/htdocs"; mkdir -p "$dir/htdocs" "$dir/secrets"; echo x > "$dir/htdocs/robots.txt"
  cp "$CERTS/tls.crt" "$CERTS/tls.key" "$dir/secrets/"
  sed -i "/^\[dependencies\]/a morgana-tls = { path = \"$BENCH_ROOT/components/tls\" }\nmorgana-secrets = { path = \"$BENCH_ROOT/components/secrets\" }" "$dir/Cargo.toml"
  cat > "$dir/src/main.rs" <<'RS'
#![no_std]
#![no_main]
extern crate alloc;
// The generated appliance.rs is replaced by the HTTPS wiring of bench/lib/tls-wiring.rs
// (built for one target: the build script still links it).
#[cfg(not(morgana_tls_bench_xen))]
include!("wiring_unix.rs");
#[cfg(morgana_tls_bench_xen)]
include!("wiring_xen.rs");
mod website;
pub use website::Website;
RS
  sed -e 's/morgana_TARGET/morgana_unix/g' -e 's/NET_TYPE/morgana_unix::HostTcp/' \
      -e 's/HTTP_ADDRESS/[127, 0, 0, 1]/' \
      -e 's/^    NET_CONNECT$/    let net = Net::connect(platform).await.map_err(|e| StartError::new("net", \&e))?;/' \
      "$HERE/lib/tls-wiring.rs" > "$dir/src/wiring_unix.rs"
  sed -e 's/morgana_TARGET/morgana_pvh/g' -e 's/NET_TYPE/morgana_direct::Stack<morgana_nic::Nic, morgana_pvh::Clock>/' \
      -e 's/HTTP_ADDRESS/[0, 0, 0, 0]/' \
      -e 's/^    NET_CONNECT$/    let nic = morgana_nic::Nic::find(platform).await.map_err(|e| StartError::new("net", \&e))?;\n    let net = Net::connect(nic, clock, entropy, morgana_direct::StackConfig::new(morgana_direct::Ipv4Config::Dhcp)).await.map_err(|e| StartError::new("net", \&e))?;/' \
      "$HERE/lib/tls-wiring.rs" > "$dir/src/wiring_xen.rs"
}
# The workspace's `[build] rustflags` (.cargo/config.toml: the configuration flags that leave
# out AVX2 code a kernel never runs): a scratch copy outside the workspace does not read
# that file, and RUSTFLAGS would replace it anyway, so they are passed here too.
WS_RUSTFLAGS=$(python3 -c 'import sys, tomllib; print(" ".join(tomllib.load(open(sys.argv[1], "rb")).get("build", {}).get("rustflags", [])))' "$BENCH_ROOT/.cargo/config.toml")
build_dir() { # DIR unix|xen -> copy of the image
  local dir=$1 tgt=$2 out=$SCRATCH/img-$(basename "$1")-$2 flags=
  [ "$tgt" = xen ] && flags="--cfg morgana_tls_bench_xen"
  mkdir -p "$SCRATCH"
  if [ "$tgt" = xen ]; then
    (cd "$dir" && MORGANA_TARGET=xen RUSTFLAGS="$WS_RUSTFLAGS $flags --check-cfg=cfg(morgana_tls_bench_xen)" cargo build --release --quiet >&2)
  else
    (cd "$dir" && env -u MORGANA_TARGET RUSTFLAGS="$WS_RUSTFLAGS --check-cfg=cfg(morgana_tls_bench_xen)" cargo build --release --quiet >&2)
  fi
  cp "$CARGO_TARGET_DIR/release/static-website-$(basename "$dir")" "$out"; echo "$out"
}
fig_size() {
  echo "== size: static-website without content, HTTP and HTTPS" >&2
  make_certs
  local plain=$SCRATCH/plain https=$SCRATCH/https
  make_scratch_site "$plain"; rm -rf "$plain/htdocs"; mkdir -p "$plain/htdocs"; echo x > "$plain/htdocs/robots.txt"
  make_https "$https"
  for tgt in unix xen; do
    local a b la lb
    a=$(build_dir "$plain" "$tgt"); b=$(build_dir "$https" "$tgt")
    la=$(loaded_bytes "$a"); lb=$(loaded_bytes "$b")
    result "tls_size_${tgt}_http_loaded_bytes" "$la"
    result "tls_size_${tgt}_https_loaded_bytes" "$lb"
    result "tls_size_${tgt}_growth_bytes" "$((lb - la))"
    R[size_$tgt]="$la B -> $lb B loaded: +$(( (lb - la) / 1024 )) KiB"
    if [ "$tgt" = xen ]; then
      R[size_goal]="$(( (lb - la) / 1024 )) KiB (goal <= 350 KiB): $([ $((lb - la)) -le $((350 * 1024)) ] && echo met || echo NOT met)"
      local sec; sec=$(size -A "$b" | awk '$1==".morgana.secrets" {print $2}')
      result tls_size_xen_secrets_section_bytes "${sec:-0}"
      echo "-- largest crates in the HTTPS kernel (bytes):" >&2
      nm -t d -S --size-sort -C "$b" | awk '{n=$4; sub(/^<+/,"",n); sub(/::.*/,"",n); s[n]+=$2} END {for (k in s) print s[k], k}' | sort -rn | head -12 >&2
      boot_check "$b"
    fi
  done
}
boot_check() { # IMAGE: HTTPS under QEMU with RDRAND; refusal without
  local img=$1 port log pid ok=no
  port=$(free_port); log=$SCRATCH/boot-https.log
  qemu-system-x86_64 -accel tcg -cpu max -m 64M -display none -nodefaults -no-user-config -no-reboot \
    -serial "file:$log" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device virtio-net-pci,netdev=n0,romfile= \
    -kernel "$img" </dev/null >/dev/null 2>&1 &
  pid=$!; PIDS+=("$pid")
  for _ in $(seq 1 120); do
    if curl -s -m 5 --cacert "$CERTS/ca.pem" -o /dev/null "https://localhost:$port/robots.txt" --resolve "localhost:$port:127.0.0.1"; then ok=yes; break; fi
    sleep 0.5
  done
  local t=nan
  if [ $ok = yes ]; then
    t=$(curl -s -m 20 --cacert "$CERTS/ca.pem" -o /dev/null -w '%{time_appconnect}' --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/robots.txt")
  fi
  kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  result tls_kernel_https_under_qemu "$ok"
  result tls_kernel_handshake_tcg_s "$t"
  R[kernel_https]="$ok (handshake under TCG: ${t} s)"
  log=$SCRATCH/boot-weak.log
  timeout 60 qemu-system-x86_64 -accel tcg -m 64M -display none -nodefaults -no-user-config -no-reboot \
    -serial "file:$log" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile= -kernel "$img" </dev/null >/dev/null 2>&1 || true
  local msg; msg=$(tr -d '\r' < "$log" | grep -m1 'morgana: tls:' || echo "no refusal seen")
  result tls_kernel_without_rdrand "\"$msg\""
  R[kernel_weak]="$msg"
}

# ---- unix --------------------------------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# CPU ticks of the waited-for children of shell PID (the clients, once waited for).
child_ticks() { awk '{print $16 + $17}' "/proc/$1/stat"; }
# s_time_rate PORT new|reuse SERVER_PID -> "connections_per_s connections_per_server_cpu_s
#   connections server_cpu_us_per_connection clients_cpu_us_per_connection"
s_time_rate() {
  local port=$1 how=$2 pid=$3 me=$BASHPID t0 t1 c0 c1 k0 k1 tmp
  tmp=$(mktemp -d)
  c0=$(cpu_ticks "$pid"); k0=$(child_ticks "$me"); t0=$(now)
  for i in $(seq 1 "$CLIENTS"); do
    openssl s_time -connect "127.0.0.1:$port" "-$how" -time "$RUN_S" -tls1_2 > "$tmp/$i" 2>&1 &
  done
  wait
  t1=$(now); c1=$(cpu_ticks "$pid"); k1=$(child_ticks "$me")
  local n; n=$(cat "$tmp"/* | awk '/connections in [0-9.]+ real/ {s+=$1} END {print s+0}')
  rm -rf "$tmp"
  awk -v n="$n" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v k="$((k1 - k0))" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { cpu=c/hz; cl=k/hz; printf "%.0f %.0f %d %.1f %.1f\n", n/(t1-t0), (cpu>0 ? n/cpu : 0), n,
             (n>0 ? 1e6*cpu/n : 0), (n>0 ? 1e6*cl/n : 0) }'
}
wrk_rate() { # URL -> req/s
  wrk -t1 -c30 -d"${RUN_S}s" "$1" 2>&1 | awk '/Requests\/sec/ {print $2}'
}
fig_unix() {
  echo "== unix: the https example against nginx (one worker)" >&2
  make_certs
  local www=$SCRATCH/www
  mkdir -p "$www/bench"
  cp "$BENCH_ROOT/components/tls/examples/site/index.html" "$www/"
  python3 -c "
import sys
for name, n in (('600.txt', 600), ('100k.txt', 102400)):
    open(sys.argv[1] + '/bench/' + name, 'wb').write(bytes(ord('a') + i % 26 for i in range(n)))" "$www"
  cargo build --release --quiet -p morgana-tls --example https --features example --manifest-path "$BENCH_ROOT/Cargo.toml" >&2
  local bin=$CARGO_TARGET_DIR/release/examples/https
  local mport nport
  mport=$(free_port)
  "$bin" --cert "$CERTS/tls.crt" --key "$CERTS/tls.key" --port "$mport" --max-connections 4096 > "$SCRATCH/https.log" 2>&1 &
  local mpid=$!; PIDS+=("$mpid")
  nport=$(free_port)
  cat > "$SCRATCH/nginx.conf" <<NGX
worker_processes 1; daemon off; pid $SCRATCH/nginx.pid; error_log $SCRATCH/nginx.err;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; keepalive_requests 100000;
  server {
    listen 127.0.0.1:$nport ssl; root $www;
    ssl_certificate $CERTS/tls.crt; ssl_certificate_key $CERTS/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on; ssl_session_cache off;
  }
}
NGX
  nginx -c "$SCRATCH/nginx.conf" &
  NGINX_PID=$!
  sleep 0.5
  local nworker; nworker=$(pgrep -P "$NGINX_PID" | head -1)
  [ -n "$nworker" ] || { echo "nginx did not start: $(cat "$SCRATCH/nginx.err")" >&2; exit 1; }
  # Repetitions alternate between the two servers, so a change in the machine's load
  # (other builds) falls on both; each figure is the median of the repetitions.
  local who port pid rep
  declare -A V
  for who in morgana nginx; do
    if [ $who = morgana ]; then port=$mport; else port=$nport; fi
    curl -sf --cacert "$CERTS/ca.pem" --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/bench/600.txt" -o /dev/null \
      || { echo "$who does not serve HTTPS on $port" >&2; exit 1; }
  done
  # Full handshakes: the servers' rates are within a few per cent of each other and the
  # clients take most of the two cores, so one run each says little. PAIRS pairs, the
  # order turning each pair so that a drift in the machine's load falls on both sides;
  # each pair gives a ratio, and the figure is the median of those ratios (wall clock:
  # handshakes completed per second, the goal's measure). The CPU times per handshake,
  # the server's (from /proc) and its three clients' together, say where the time went.
  local pair order full full_cpu full_us client_us
  declare -A P
  for pair in $(seq 1 "$PAIRS"); do
    if (( pair % 2 )); then order="morgana nginx"; else order="nginx morgana"; fi
    for who in $order; do
      if [ $who = morgana ]; then port=$mport; pid=$mpid; else port=$nport; pid=$nworker; fi
      read -r full full_cpu _ full_us client_us < <(s_time_rate "$port" new "$pid")
      V[${who}_full]+=" $full"; V[${who}_full_cpu]+=" $full_cpu"
      V[${who}_full_us]+=" $full_us"; V[${who}_client_us]+=" $client_us"
      P[${who}_full]=$full; P[${who}_full_cpu]=$full_cpu
    done
    V[pair_full]+=" $(ratio "${P[morgana_full]}" "${P[nginx_full]}")"
    V[pair_full_cpu]+=" $(ratio "${P[morgana_full_cpu]}" "${P[nginx_full_cpu]}")"
    echo "   pair $pair (order: $order), Morgana / nginx: full handshakes/s ${P[morgana_full]} / ${P[nginx_full]}, per server CPU-s ${P[morgana_full_cpu]} / ${P[nginx_full_cpu]}" >&2
  done
  for rep in $(seq 1 "$REPS"); do
    for who in morgana nginx; do
      if [ $who = morgana ]; then port=$mport; pid=$mpid; else port=$nport; pid=$nworker; fi
      local reuse reuse_cpu
      read -r reuse reuse_cpu _ < <(s_time_rate "$port" reuse "$pid")
      V[${who}_reuse]+=" $reuse"; V[${who}_reuse_cpu]+=" $reuse_cpu"
      V[${who}_small]+=" $(wrk_rate "https://127.0.0.1:$port/bench/600.txt")"
      V[${who}_big]+=" $(wrk_rate "https://127.0.0.1:$port/bench/100k.txt")"
    done
  done
  local k name
  for who in morgana nginx; do
    for k in full:full_handshakes_per_s full_cpu:full_handshakes_per_server_cpu_s \
             full_us:full_handshake_server_cpu_us \
             client_us:full_handshake_clients_cpu_us reuse:resumed_handshakes_per_s \
             reuse_cpu:resumed_handshakes_per_server_cpu_s small:600b_req_per_s big:100k_req_per_s; do
      name=${k#*:}; k=${k%%:*}
      # shellcheck disable=SC2086
      R[${who}_$k]=$(median ${V[${who}_$k]})
      result "tls_${who}_${name}" "${R[${who}_$k]}"
      result "tls_${who}_${name}_all" "\"${V[${who}_$k]# }\""
    done
  done
  local st
  for k in full:full_handshakes_per_s full_cpu:full_handshakes_per_server_cpu_s; do
    name=${k#*:}; k=${k%%:*}
    # shellcheck disable=SC2086
    read -r st _ < <(stats ${V[pair_$k]})
    R[pair_$k]=$(awk -v m="$st" 'BEGIN { printf "%.2f", m }')
    # shellcheck disable=SC2086
    R[pair_${k}_range]=$(stats ${V[pair_$k]} | awk '{ printf "%.2f-%.2f", $2, $3 }')
    result "tls_unix_${name}_pair_ratio_median" "${R[pair_$k]}"
    result "tls_unix_${name}_pair_ratios_all" "\"${V[pair_$k]# }\""
  done
}

# ---- kernel ------------------------------------------------------------------------------
# bench_files DIR: the files both servers serve (DIR/bench/600.txt, DIR/bench/100k.txt).
bench_files() {
  mkdir -p "$1/bench"
  python3 -c "
import sys
for name, n in (('600.txt', 600), ('100k.txt', 102400)):
    open(sys.argv[1] + '/bench/' + name, 'wb').write(bytes(ord('a') + i % 26 for i in range(n)))" "$1"
}
# linux_tls_initrd -> path of an initrd: bench/linux-guest.sh's base (lib/guest-initrd.sh)
# with the host's nginx and its libraries, the certificate and the bench files.
linux_tls_initrd() {
  local root=$SCRATCH/linux-tls-root out=$SCRATCH/linux-tls-initrd.gz
  guest_root "$root"
  guest_add_program "$root" /usr/sbin/nginx
  mkdir -p "$root/etc/nginx" "$root/var/lib/nginx" "$root/var/log/nginx" "$root/www"
  cp "$CERTS/tls.crt" "$CERTS/tls.key" "$root/etc/nginx/"
  bench_files "$root/www"
  cat > "$root/etc/nginx/nginx.conf" <<'NGX'
user root; worker_processes 1; daemon on; pid /run/nginx.pid; error_log /tmp/error.log;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; keepalive_requests 100000;
  server {
    listen 443 ssl; root /www;
    ssl_certificate /etc/nginx/tls.crt; ssl_certificate_key /etc/nginx/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on; ssl_session_cache off;
  }
}
NGX
  guest_init "$root" <<'INIT'
/usr/sbin/nginx -c /etc/nginx/nginx.conf || cat /tmp/error.log
echo READY
while true; do sleep 1000; done
INIT
  guest_pack "$root" "$out"
  echo "$out"
}
wait_https() { # PORT TRIES -> 0 once the 600 B file is served over HTTPS
  for _ in $(seq 1 "$2"); do
    curl -s -m 5 --cacert "$CERTS/ca.pem" --resolve "localhost:$1:127.0.0.1" -o /dev/null "https://localhost:$1/bench/600.txt" && return 0
    sleep 0.5
  done
  return 1
}
fig_kernel() {
  echo "== kernel: the HTTPS PVH image against a Linux guest with nginx, same QEMU (-accel tcg -cpu max -m ${BENCH_MEM:-128}M)" >&2
  make_certs
  local site=$SCRATCH/https-files mem=${BENCH_MEM:-128}
  make_https "$site"; bench_files "$site/htdocs"
  local img initrd; img=$(build_dir "$site" xen); initrd=$(linux_tls_initrd)
  local mport lport mpid lpid
  mport=$(free_port); lport=$(free_port)
  qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -cpu max -m "${mem}M" -serial "file:$SCRATCH/kernel-morgana.log" \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$mport-:8080" -device "$QEMU_NIC" -kernel "$img" </dev/null >/dev/null 2>&1 &
  mpid=$!; PIDS+=("$mpid")
  qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -cpu max -m "${mem}M" -serial "file:$SCRATCH/kernel-linux.log" \
    -kernel "$GUEST_KERNEL" -initrd "$initrd" -append "console=ttyS0 quiet" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$lport-:443" -device "$QEMU_NIC" </dev/null >/dev/null 2>&1 &
  lpid=$!; PIDS+=("$lpid")
  wait_https "$mport" 240 || { echo "kernel: the Morgana HTTPS kernel does not answer (log: $SCRATCH/kernel-morgana.log)" >&2; exit 1; }
  wait_https "$lport" 360 || { echo "kernel: the Linux guest's nginx does not answer (log: $SCRATCH/kernel-linux.log)" >&2; exit 1; }
  # one guest at a time: the other QEMU is stopped, so both get the same host CPU
  for who in kmorgana klinux; do
    local port pid other; if [ $who = kmorgana ]; then port=$mport; pid=$mpid; other=$lpid; else port=$lport; pid=$lpid; other=$mpid; fi
    kill -STOP "$other"
    read -r full full_cpu _ < <(s_time_rate "$port" new "$pid")
    read -r reuse reuse_cpu _ < <(s_time_rate "$port" reuse "$pid")
    local small big
    small=$(wrk_rate "https://127.0.0.1:$port/bench/600.txt")
    big=$(wrk_rate "https://127.0.0.1:$port/bench/100k.txt")
    kill -CONT "$other"
    result "tls_${who}_full_handshakes_per_s" "$full"; result "tls_${who}_full_handshakes_per_qemu_cpu_s" "$full_cpu"
    result "tls_${who}_resumed_handshakes_per_s" "$reuse"; result "tls_${who}_resumed_handshakes_per_qemu_cpu_s" "$reuse_cpu"
    result "tls_${who}_600b_req_per_s" "$small"; result "tls_${who}_100k_req_per_s" "$big"
    R[${who}_full]=$full; R[${who}_full_cpu]=$full_cpu; R[${who}_reuse]=$reuse; R[${who}_reuse_cpu]=$reuse_cpu
    R[${who}_small]=$small; R[${who}_big]=$big
  done
}

result tls_bench_mode "$MODE"
result tls_bench_loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
for f in "${FIGS[@]}"; do "fig_$f"; done

echo
echo "== TLS results ($MODE; load average at start $(cut -d' ' -f1 /proc/loadavg))"
if [[ " ${FIGS[*]} " == *" size "* ]]; then
  printf '%-34s %s\n' "size, Unix process" "${R[size_unix]}"
  printf '%-34s %s\n' "size, PVH kernel" "${R[size_xen]}"
  printf '%-34s %s\n' "growth for TLS (kernel)" "${R[size_goal]}"
  printf '%-34s %s\n' "HTTPS kernel under QEMU -cpu max" "${R[kernel_https]}"
  printf '%-34s %s\n' "same kernel without RDRAND" "${R[kernel_weak]}"
fi
if [[ " ${FIGS[*]} " == *" unix "* ]]; then
  printf '%-34s %12s %12s %8s\n' "Unix, same machine" "morgana" "nginx" "ratio"
  printf '%-34s %12s %12s %8s\n' "full handshakes/s (wall clock)" "${R[morgana_full]}" "${R[nginx_full]}" "${R[pair_full]}x"
  printf '%-34s %12s %12s %8s\n' "  per server CPU-second" "${R[morgana_full_cpu]}" "${R[nginx_full_cpu]}" "${R[pair_full_cpu]}x"
  printf '%-34s %12s %12s %8s\n' "  server CPU us per handshake" "${R[morgana_full_us]}" "${R[nginx_full_us]}" "$(ratio "${R[morgana_full_us]}" "${R[nginx_full_us]}")x"
  printf '%-34s %12s %12s %8s\n' "  clients' CPU us per handshake" "${R[morgana_client_us]}" "${R[nginx_client_us]}" "$(ratio "${R[morgana_client_us]}" "${R[nginx_client_us]}")x"
  for k in reuse:"resumed handshakes/s" reuse_cpu:"  per server CPU-second" small:"600 B keep-alive req/s" big:"100 KB keep-alive req/s"; do
    printf '%-34s %12s %12s %8s\n' "${k#*:}" "${R[morgana_${k%%:*}]}" "${R[nginx_${k%%:*}]}" "$(ratio "${R[morgana_${k%%:*}]}" "${R[nginx_${k%%:*}]}")x"
  done
  echo "full handshakes: the ratios are medians of $PAIRS pair ratios (wall clock ${R[pair_full_range]}," \
       "per server CPU-second ${R[pair_full_cpu_range]}); the goal's measure is the wall-clock one." \
       "CPU us per handshake: lower is cheaper."
fi
if [[ " ${FIGS[*]} " == *" kernel "* ]]; then
  printf '%-34s %12s %12s %8s\n' "QEMU TCG, one guest at a time" "morgana" "linux+nginx" "ratio"
  for k in full:"full handshakes/s" full_cpu:"  per QEMU CPU-second" reuse:"resumed handshakes/s" reuse_cpu:"  per QEMU CPU-second" small:"600 B keep-alive req/s" big:"100 KB keep-alive req/s"; do
    printf '%-34s %12s %12s %8s\n' "${k#*:}" "${R[kmorgana_${k%%:*}]}" "${R[klinux_${k%%:*}]}" "$(ratio "${R[kmorgana_${k%%:*}]}" "${R[klinux_${k%%:*}]}")x"
  done
fi
