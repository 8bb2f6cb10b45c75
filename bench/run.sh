#!/usr/bin/env bash
# Morgana benchmarks, side by side with the references measured in the same run.
#
#   bench/run.sh [--quick|--smoke] [FIGURE...]
#
# FIGURE: boot size memory unix kernel idle reconfigure crunch (default: all, in that order).
#   --quick  fewer repetitions / shorter load runs (a few minutes)
#   --smoke  one short repetition of everything: checks each benchmark still works
# Prints name=value lines as it goes and a table at the end; the name=value lines are also
# written to $BENCH_OUT (default target/h-bench/bench-results.txt).
# References (fetched with apt-get and cached in ~/.cache/morgana-bench): Debian's kernel +
# busybox httpd under the same QEMU (bench/linux-guest.sh); nginx, one worker (bench/nginx.sh).
# Network: 127.0.0.1 and QEMU's user network only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib/common.sh"
. "$HERE/lib/scratch.sh"
export CARGO_TARGET_DIR=$BENCH_TARGET

MODE=full
FIGS=()
for a in "$@"; do
  case "$a" in
    --quick) MODE=quick ;; --smoke) MODE=smoke ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    boot|size|memory|unix|kernel|idle|reconfigure|crunch) FIGS+=("$a") ;;
    *) echo "unknown argument $a" >&2; exit 2 ;;
  esac
done
[ ${#FIGS[@]} -eq 0 ] && FIGS=(boot size memory unix kernel idle reconfigure crunch)
case $MODE in
  full)  BOOT_N=5; LINUX_N=3; WRK_D=10; WRK_N=3; IDLE_S=10; RECONF_N=3; CRUNCH_SIZES="100 1000 5000" ;;
  quick) BOOT_N=3; LINUX_N=1; WRK_D=5;  WRK_N=1; IDLE_S=10; RECONF_N=2; CRUNCH_SIZES="100 1000 5000" ;;
  smoke) BOOT_N=1; LINUX_N=1; WRK_D=2;  WRK_N=1; IDLE_S=2;  RECONF_N=1; CRUNCH_SIZES="100" ;;
esac
# Tools: install what is missing (Debian packages, as root); QEMU comes from scripts/setup.sh.
need=()
for t in wrk:wrk curl:curl python3:python3 nginx:nginx-light cpio:cpio strip:binutils; do
  command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
[ ${#need[@]} -eq 0 ] || apt_need "${need[@]}"
command -v qemu-system-x86_64 >/dev/null || { echo "bench: qemu-system-x86_64 is missing: run scripts/setup.sh" >&2; exit 1; }
MEM=${BENCH_MEM:-128}          # -m for both guests in boot/kernel/idle (the Linux guest needs ~100 MiB)
LINUX_TIMEOUT=${BENCH_LINUX_TIMEOUT:-180}
POLL_TO=${BENCH_POLL_TIMEOUT:-0.3}   # per-try curl timeout when polling for the first 200 (see wait_http)
SCRATCH=${BENCH_SCRATCH:-/tmp/morgana-bench}
BENCH_OUT=${BENCH_OUT:-$BENCH_TARGET/bench-results.txt}
export BENCH_RESULTS=$BENCH_OUT
mkdir -p "$SCRATCH" "$(dirname "$BENCH_OUT")"; : > "$BENCH_OUT"
result bench_mode "$MODE"
result bench_host "$(nproc)cpu_$(uname -r)"
result bench_date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
result bench_loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"

# ---- cleanup: every background process this script starts is recorded here -----------
PIDS=()
NGINX_CONF=
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -n "$NGINX_CONF" ] && "$HERE/nginx.sh" stop "$NGINX_CONF" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# ---- builds ----------------------------------------------------------------------------
# One target dir for everything (dependencies are shared; switching MORGANA_TARGET or the
# package only rebuilds the appliance crate). Each result is copied to $SCRATCH/img/LABEL.
# TARGET: unix, or a kernel target: xen (every hypervisor), qemu (QEMU/KVM only), xen-only.
build_ws() { # build_ws PACKAGE TARGET -> path of a copy of the binary
  local pkg=$1 tgt=$2 out=$SCRATCH/img/$1-$2
  if [ "$tgt" != unix ]; then
    MORGANA_TARGET=$tgt cargo build --release --quiet -p "$pkg" --manifest-path "$BENCH_ROOT/Cargo.toml" >&2
  else
    env -u MORGANA_TARGET cargo build --release --quiet -p "$pkg" --manifest-path "$BENCH_ROOT/Cargo.toml" >&2
  fi
  mkdir -p "$SCRATCH/img"; cp "$CARGO_TARGET_DIR/release/$pkg" "$out"; echo "$out"
}
build_scratch() { # build_scratch DIR TARGET -> path of a copy of the image
  local dir=$1 tgt=$2 out=$SCRATCH/img/$(basename "$1")-$2
  if [ "$tgt" != unix ]; then
    (cd "$dir" && MORGANA_TARGET=$tgt cargo build --release --quiet >&2)
  else
    (cd "$dir" && env -u MORGANA_TARGET cargo build --release --quiet >&2)
  fi
  mkdir -p "$SCRATCH/img"; cp "$CARGO_TARGET_DIR/release/static-website-$(basename "$dir")" "$out"; echo "$out"
}
SITE=$SCRATCH/site
site_ready=
scratch_site() { [ -n "$site_ready" ] || { make_scratch_site "$SITE"; site_ready=1; }; }

# ---- QEMU ------------------------------------------------------------------------------
# The same flags for the Morgana image and the Linux guest (the Linux side is in linux-guest.sh).
qemu_morgana() { # IMAGE PORT MEM LOG [APPEND] -> pid
  local img=$1 port=$2 mem=$3 log=$4 app=${5:-}
  local extra=(); [ -n "$app" ] && extra=(-append "$app")
  qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m "$mem" \
    -kernel "$img" "${extra[@]}" -serial "file:$log" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$port-:8080" -device "$QEMU_NIC" \
    </dev/null >/dev/null 2>&1 &
  echo $!
}
qemu_linux() { "$HERE/linux-guest.sh" boot "$@"; }

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
# Host TCP handshakes dropped because a listener's accept queue was full (all sockets).
# QEMU's user network (libslirp) listens on a hostfwd port with a backlog of 1, so a burst
# of connects overflows it and those clients retry after 1 s, 3 s, ...: see figure 5.
listen_overflows() { awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) if ($i == "ListenOverflows") c = i; h = 1 } else print $c }' /proc/net/netstat; }

declare -A R   # results for the table

# ---- 1. boot to first HTTP 200 -----------------------------------------------------------
fig_boot() {
  echo "== boot: static-website PVH vs Linux guest, -m ${MEM}M, TCG, virtio-net-pci, user net" >&2
  "$HERE/linux-guest.sh" build
  local img; img=$(build_ws static-website xen)
  local mt=() lt=() rdy=() g_net=() g_lease=() g_listen=() h_entry=() h_listen=() n=0
  for i in $(seq 1 "$BOOT_N"); do
    local port log pid s t
    port=$(free_port); log=$SCRATCH/boot-morgana-$i.log; s=$(now)
    pid=$(qemu_morgana "$img" "$port" "${MEM}M" "$log" morgana.log=debug); PIDS+=("$pid")
    local tl; tl=$(python3 "$HERE/lib/firstok.py" "$s" "$log" "http://127.0.0.1:$port/" 30 "$POLL_TO" || true)
    echo "boot: morgana run $i: $(echo $tl)" >&2
    t=$(sed -n 's/^first200_s=//p' <<<"$tl")
    if [ -n "$t" ]; then mt+=("$t"); else echo "boot: morgana run $i did not answer" >&2; fi
    local v
    v=$(sed -n 's/^guest_first_host_s=//p' <<<"$tl"); local gt; gt=$(sed -n 's/^guest_first_ts=//p' <<<"$tl")
    [ -n "$v" ] && [ -n "$gt" ] && h_entry+=("$(awk -v a="$v" -v b="$gt" 'BEGIN{printf "%.3f", a-b}')")
    v=$(sed -n 's/^listening_line_s=//p' <<<"$tl"); [ -n "$v" ] && h_listen+=("$v")
    stop_pid "$pid"
    local r; r=$(sed -n 's/^morgana: ready in \([0-9]*\) us.*/\1/p' "$log" | head -1)
    [ -n "$r" ] && rdy+=("$(awk -v u="$r" 'BEGIN{printf "%.3f", u/1000}')")
    # guest-side timestamps (seconds since the PVH entry) of the milestones
    local ts
    ts=$(grep -m1 'virtio-net .*MAC' "$log" | sed 's/^\[ *\([0-9.]*\).*/\1/'); [ -n "$ts" ] && g_net+=("$ts")
    ts=$(grep -m1 'leased from DHCP' "$log" | sed 's/^\[ *\([0-9.]*\).*/\1/'); [ -n "$ts" ] && g_lease+=("$ts")
    ts=$(grep -m1 'listening on' "$log" | sed 's/^\[ *\([0-9.]*\).*/\1/'); [ -n "$ts" ] && g_listen+=("$ts")
    if [ "$i" -le "$LINUX_N" ]; then
      port=$(free_port); log=$SCRATCH/boot-linux-$i.log; s=$(now)
      pid=$(qemu_linux "$port" "$MEM" "$log"); PIDS+=("$pid")
      local ltl; ltl=$(python3 "$HERE/lib/firstok.py" "$s" "$log" "http://127.0.0.1:$port/index.html" "$LINUX_TIMEOUT" "$POLL_TO" || true)
      t=$(sed -n 's/^first200_s=//p' <<<"$ltl")
      if [ -n "$t" ]; then lt+=("$t")
      else echo "boot: linux run $i did not answer in ${LINUX_TIMEOUT}s" >&2; fi
      stop_pid "$pid"
    fi
  done
  # QEMU + SeaBIOS floor: the hello PVH image (no network job) from QEMU start to power-off,
  # with the same flags; its "ready in" is the guest's share.
  local himg fl=() hr=()
  himg=$(build_ws hello xen)
  for i in $(seq 1 "$BOOT_N"); do
    local s log; log=$SCRATCH/boot-hello-$i.log; s=$(now)
    timeout 30 qemu-system-x86_64 "${QEMU_MACHINE_ARGS[@]}" -m "${MEM}M" -kernel "$himg" \
      -serial "file:$log" -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
      -netdev "user,id=n0" -device "$QEMU_NIC" </dev/null >/dev/null 2>&1 || true
    fl+=("$(elapsed "$s")")
    local r; r=$(sed -n 's/^morgana: ready in \([0-9]*\) us.*/\1/p' "$log" | head -1)
    [ -n "$r" ] && hr+=("$(awk -v u="$r" 'BEGIN{printf "%.3f", u/1000}')")
  done
  read -r m a b c <<<"$(stats "${fl[@]}")"; result boot_qemu_floor_hello_s "$m"; R[boot_floor]="$m ($a-$b) s: QEMU start -> hello PVH powered off"
  read -r m a b c <<<"$(stats "${hr[@]}")"; result boot_hello_ready_in_ms "$m"
  local m l
  read -r m a b c <<<"$(stats "${mt[@]}")"; result boot_morgana_first200_s "$m"; result boot_morgana_first200_range_s "$a-$b"; R[boot_m]="$m ($a-$b, n=$c)"
  read -r l a b c <<<"$(stats "${lt[@]}")"; result boot_linux_first200_s "$l"; result boot_linux_first200_range_s "$a-$b"; R[boot_l]="$l ($a-$b, n=$c)"
  result boot_linux_over_morgana "$(ratio "$l" "$m")"; R[boot_r]="$(ratio "$l" "$m")x"
  read -r m a b c <<<"$(stats "${rdy[@]}")"; result boot_morgana_ready_in_ms "$m"; R[boot_ready]="$m ms ($a-$b)"
  read -r m a b c <<<"$(stats "${h_entry[@]}")"; result boot_host_pvh_entry_s "$m"; R[boot_h_entry]="$m s ($a-$b) after QEMU start (console line time - guest timestamp)"
  read -r m a b c <<<"$(stats "${h_listen[@]}")"; result boot_host_listening_line_s "$m"; R[boot_h_listen]="$m s ($a-$b) after QEMU start"
  read -r m a b c <<<"$(stats "${g_net[@]}")"; result boot_guest_virtio_up_s "$m"; R[boot_g_net]="$m s"
  read -r m a b c <<<"$(stats "${g_lease[@]}")"; result boot_guest_dhcp_lease_s "$m"; R[boot_g_lease]="$m s"
  read -r m a b c <<<"$(stats "${g_listen[@]}")"; result boot_guest_listening_s "$m"; R[boot_g_listen]="$m s"
}

# ---- 2. image size ----------------------------------------------------------------------
by_crate() { # IMAGE -> "crate bytes" lines, largest first (text/data/bss symbols)
  nm -t d -S --size-sort -C "$1" 2>/dev/null | awk '$3 ~ /^[tTrRdDbB]$/ {
      name=$0; sub(/^[0-9]+ [0-9]+ . /, "", name)
      sub(/^<+/, "", name); sub(/^impl /, "", name); sub(/^&(mut )?/, "", name)
      # <T as krate::Trait>::f -> krate (the trait impl instance); <[T]>::f, <char>::f -> core
      if (match(name, / as [A-Za-z_]/)) { rest=substr(name, RSTART+4); if (index(rest, "::")) name=rest }
      c=name; if (index(c, "::")) c=substr(c, 1, index(c, "::")-1); else c="(no crate: asm, memcpy & co.)"
      if (c ~ />$/ || c ~ /^\[/ || c ~ /^(u8|u16|u32|u64|usize|i8|i16|i32|i64|isize|char|str|bool)$/) c="core"
      s[c" "$3]+=($2+0) }
    END { for (k in s) print k, s[k] }' | sort -k3 -n -r
}
loaded_bytes() { size -A "$1" | awk '$1 ~ /^\.(text|rodata|data|note|gcc_except|eh_frame|init|fini|got|tdata)/ {s+=$2} END{print s+0}'; }
fig_size() {
  echo "== size" >&2
  scratch_site
  # Without content: the smallest static-website, also without the keys it reads at boot
  # (`boot: [..]`: the ≤ 200 KiB goal), and beside it the same with them (their cost).
  local empty=$SCRATCH/site-empty empty_boot=$SCRATCH/site-empty-boot
  make_scratch_site "$empty"; rm -rf "$empty/htdocs"; mkdir -p "$empty/htdocs"; echo x > "$empty/htdocs/robots.txt"
  sed -i '/^ *boot: \[/d' "$empty/appliance.ron"
  make_scratch_site "$empty_boot"; rm -rf "$empty_boot/htdocs"; mkdir -p "$empty_boot/htdocs"; echo x > "$empty_boot/htdocs/robots.txt"
  # xen: the kernel for every hypervisor; qemu and xen-only: for one (its drivers only).
  for tgt in unix xen qemu xen-only; do
    local h s e
    h=$(build_ws hello "$tgt"); s=$(build_ws static-website "$tgt")
    local eimg bimg; eimg=$(build_scratch "$empty" "$tgt"); bimg=$(build_scratch "$empty_boot" "$tgt")
    for pair in "hello:$h" "static_website:$s" "static_website_nocontent:$eimg" "static_website_nocontent_boot:$bimg"; do
      local n=${pair%%:*} f=${pair#*:} st
      st=$SCRATCH/$n-$tgt.stripped; strip -o "$st" "$f" 2>/dev/null || cp "$f" "$st"
      local t=${tgt//-/_}
      result "size_${n}_${t}_file_bytes" "$(stat -c %s "$f")"
      result "size_${n}_${t}_stripped_bytes" "$(stat -c %s "$st")"
      result "size_${n}_${t}_loaded_bytes" "$(loaded_bytes "$f")"
      R["size_${n}_${t}"]="$(stat -c %s "$st") B stripped ($(loaded_bytes "$f") B loaded)"
      by_crate "$f" > "$SCRATCH/crates-$n-$tgt.txt"
    done
  done
  echo "-- bytes per crate, static-website xen (crate symbol-type bytes; t=text r=rodata d=data b=bss):" >&2
  head -20 "$SCRATCH/crates-static_website-xen.txt" >&2
  echo "-- bytes per crate, hello unix:" >&2
  head -10 "$SCRATCH/crates-hello-unix.txt" >&2
}

# ---- 3. memory ---------------------------------------------------------------------------
fig_memory() {
  echo "== memory: smallest -m that boots and serves /1m.bin" >&2
  scratch_site
  local img; img=$(build_scratch "$SITE" xen)
  local smallest=none
  for mem in 32 16 12 10 8 7 6 5 4 3; do
    local port log pid ok=0
    port=$(free_port); log=$SCRATCH/mem-$mem.log
    pid=$(qemu_morgana "$img" "$port" "${mem}M" "$log"); PIDS+=("$pid")
    if timeout 20 bash -c ". '$HERE/lib/common.sh'; wait_http http://127.0.0.1:$port/ 400 0.05"; then
      local got; got=$(curl -s -m 10 -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/1m.bin" || echo 0)
      [ "$got" = 1048576 ] && ok=1
    fi
    stop_pid "$pid"
    echo "memory: -m ${mem}M -> $([ $ok = 1 ] && echo serves || echo fails: "$(tail -n 1 "$log" | tr -d '\r')")" >&2
    if [ $ok = 1 ]; then smallest=$mem; else break; fi
  done
  result memory_min_mib "$smallest"; R[mem]="$smallest MiB"
}

# ---- 4. throughput, Unix ------------------------------------------------------------------
wrk_run() { # URL -> "req_per_s p50_ms p99_ms"
  wrk -t2 -c30 -d"${WRK_D}s" --timeout 5s --latency "$1" 2>&1 | awk '
    /Requests\/sec/ {r=$2}
    function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)}
    END { printf "%s %s %s\n", (r==""?"nan":r), (p50==""?"nan":p50), (p99==""?"nan":p99) }'
}
fig_unix() {
  echo "== unix throughput: static-website (Unix) vs nginx (1 worker), wrk -t2 -c30 -d${WRK_D}s" >&2
  scratch_site
  local mport nport
  mport=$(free_port); nport=$(free_port)
  sed -i "s/port: [0-9]*/port: $mport/" "$SITE/appliance.ron"
  local img; img=$(build_scratch "$SITE" unix)
  cp "$SITE/appliance.ron.orig" "$SITE/appliance.ron"
  "$img" </dev/null >/dev/null 2>"$SCRATCH/unix-site.err" & local mpid=$!; PIDS+=("$mpid")
  NGINX_CONF=$nport; "$HERE/nginx.sh" start "$nport" "$SITE/htdocs"
  wait_http "http://127.0.0.1:$mport/small.html" 100 0.05 || { echo "unix: appliance not answering" >&2; return 1; }
  for f in small.html 100k.bin; do
    local k=${f%%.*} mr=() nr=() m50=() n50=() m99=() n99=()
    for i in $(seq 1 "$WRK_N"); do
      read -r r a b <<<"$(wrk_run "http://127.0.0.1:$mport/$f")"; mr+=("$r"); m50+=("$a"); m99+=("$b")
      read -r r a b <<<"$(wrk_run "http://127.0.0.1:$nport/$f")"; nr+=("$r"); n50+=("$a"); n99+=("$b")
    done
    local mm nm; mm=$(median "${mr[@]}"); nm=$(median "${nr[@]}")
    read -r _ lo hi _ <<<"$(stats "${mr[@]}")"
    result "unix_${k}_morgana_rps" "$mm"; result "unix_${k}_morgana_rps_range" "$lo-$hi"
    result "unix_${k}_morgana_p50_ms" "$(median "${m50[@]}")"; result "unix_${k}_morgana_p99_ms" "$(median "${m99[@]}")"
    read -r _ lo2 hi2 _ <<<"$(stats "${nr[@]}")"
    result "unix_${k}_nginx_rps" "$nm"; result "unix_${k}_nginx_rps_range" "$lo2-$hi2"
    result "unix_${k}_nginx_p50_ms" "$(median "${n50[@]}")"; result "unix_${k}_nginx_p99_ms" "$(median "${n99[@]}")"
    result "unix_${k}_morgana_over_nginx" "$(ratio "$mm" "$nm")"
    R["unix_$k"]="$mm vs $nm req/s = $(ratio "$mm" "$nm")x (p50 $(median "${m50[@]}")/$(median "${n50[@]}") ms, p99 $(median "${m99[@]}")/$(median "${n99[@]}") ms)"
  done
  stop_pid "$mpid"; "$HERE/nginx.sh" stop "$nport"; NGINX_CONF=
}

# ---- 5. throughput, kernel under QEMU ----------------------------------------------------------
fig_kernel() {
  echo "== kernel throughput: PVH image vs Linux guest under QEMU, wrk -t2 -c30 -d${WRK_D}s" >&2
  scratch_site
  local img; img=$(build_scratch "$SITE" xen)
  local mport lport mpid lpid
  mport=$(free_port); lport=$(free_port)
  mpid=$(qemu_morgana "$img" "$mport" "${MEM}M" "$SCRATCH/kernel-morgana.log"); PIDS+=("$mpid")
  lpid=$(qemu_linux "$lport" "$MEM" "$SCRATCH/kernel-linux.log"); PIDS+=("$lpid")
  wait_http "http://127.0.0.1:$mport/small.html" 300 0.1 || { echo "kernel: morgana not answering" >&2; return 1; }
  wait_http "http://127.0.0.1:$lport/small.html" $((LINUX_TIMEOUT * 10)) 0.1 || { echo "kernel: linux not answering" >&2; return 1; }
  # run one guest at a time: suspend the other QEMU so both get the same host CPU
  for f in small.html 100k.bin; do
    local k=${f%%.*} mr=() lr=() m99=() l99=() lo0 lo1
    lo0=$(listen_overflows)
    for i in $(seq 1 "$WRK_N"); do
      kill -STOP "$lpid"; read -r r a b <<<"$(wrk_run "http://127.0.0.1:$mport/$f")"; kill -CONT "$lpid"; mr+=("$r"); m99+=("$b")
      kill -STOP "$mpid"; read -r r a b <<<"$(wrk_run "http://127.0.0.1:$lport/$f")"; kill -CONT "$mpid"; lr+=("$r"); l99+=("$b")
    done
    lo1=$(listen_overflows)
    local mm lm; mm=$(median "${mr[@]}"); lm=$(median "${lr[@]}")
    result "kernel_${k}_host_listen_overflows" "$((lo1 - lo0))"
    result "kernel_${k}_morgana_rps" "$mm"; result "kernel_${k}_linux_rps" "$lm"
    result "kernel_${k}_morgana_p99_ms" "$(median "${m99[@]}")"; result "kernel_${k}_linux_p99_ms" "$(median "${l99[@]}")"
    result "kernel_${k}_morgana_over_linux" "$(ratio "$mm" "$lm")"
    R["kernel_$k"]="$mm vs $lm req/s = $(ratio "$mm" "$lm")x (p99 $(median "${m99[@]}")/$(median "${l99[@]}") ms; $((lo1 - lo0)) handshakes dropped at slirp's backlog of 1)"
  done
  # ---- 6. idle cost, measured on the same two booted guests (one at a time) ----
  sleep 1
  local hz; hz=$(getconf CLK_TCK)
  kill -STOP "$lpid"; local a0; a0=$(cpu_ticks "$mpid"); sleep "$IDLE_S"; local a1; a1=$(cpu_ticks "$mpid"); kill -CONT "$lpid"
  kill -STOP "$mpid"; local b0; b0=$(cpu_ticks "$lpid"); sleep "$IDLE_S"; local b1; b1=$(cpu_ticks "$lpid"); kill -CONT "$mpid"
  local mi li
  mi=$(awk -v d=$((a1 - a0)) -v hz="$hz" -v s="$IDLE_S" 'BEGIN{printf "%.2f", 100*d/hz/s}')
  li=$(awk -v d=$((b1 - b0)) -v hz="$hz" -v s="$IDLE_S" 'BEGIN{printf "%.2f", 100*d/hz/s}')
  result idle_morgana_cpu_pct "$mi"; result idle_linux_cpu_pct "$li"; R[idle]="$mi% vs Linux guest $li% of a core (${IDLE_S} s)"
  stop_pid "$mpid"; stop_pid "$lpid"
}
fig_idle() { [[ " ${FIGS[*]} " == *" kernel "* ]] || fig_kernel_idle_only; }
fig_kernel_idle_only() { # idle without the throughput runs
  local saved=$WRK_D; WRK_D=1; fig_kernel >/dev/null; WRK_D=$saved
}

# ---- 7. reconfigure loop ----------------------------------------------------------------------------
fig_reconfigure() {
  echo "== reconfigure: edit the port in appliance.ron -> rebuilt PVH image (release)" >&2
  scratch_site
  build_scratch "$SITE" xen >/dev/null     # warm
  local ts=()
  for i in $(seq 1 "$RECONF_N"); do
    sed -i "s/port: [0-9]*/port: $((9000 + i))/" "$SITE/appliance.ron"
    local s; s=$(now); build_scratch "$SITE" xen >/dev/null; ts+=("$(elapsed "$s")")
  done
  cp "$SITE/appliance.ron.orig" "$SITE/appliance.ron"
  read -r m a b c <<<"$(stats "${ts[@]}")"; result reconfigure_s "$m"; result reconfigure_range_s "$a-$b"; R[reconf]="$m s ($a-$b, n=$c)"
}

# ---- 8. crunch scaling -------------------------------------------------------------------------------
fig_crunch() {
  echo "== crunch scaling: N files (half text, half random, ~10 KB each), Unix target" >&2
  for n in $CRUNCH_SIZES; do
    local d=$SCRATCH/crunch-$n
    make_scratch_site "$d"
    rm -rf "$d/htdocs"; mkdir -p "$d/htdocs"
    python3 - "$d/htdocs" "$n" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2]); rnd = random.Random(n)
words = "morgana appliance kernel unikernel crunch static website server request response".split()
for i in range(n):
    sub = os.path.join(root, f"d{i // 100}"); os.makedirs(sub, exist_ok=True)
    if i % 2 == 0:
        text = " ".join(rnd.choice(words) for _ in range(1400))[:10240]
        open(os.path.join(sub, f"f{i}.txt"), "w").write(text)
    else:
        open(os.path.join(sub, f"f{i}.bin"), "wb").write(rnd.randbytes(10240))
PY
    local s; s=$(now)
    local img; img=$(build_scratch "$d" unix)
    local t; t=$(elapsed "$s")
    # a clean build includes the dependencies: also time a rebuild after touching the site
    touch "$d/htdocs/d0/f0.txt"; s=$(now); build_scratch "$d" unix >/dev/null; local t2; t2=$(elapsed "$s")
    result "crunch_${n}_build_s" "$t"; result "crunch_${n}_rebuild_s" "$t2"; result "crunch_${n}_image_bytes" "$(stat -c %s "$img")"
    result "crunch_${n}_content_bytes" "$(find "$d/htdocs" -type f -printf "%s\n" | awk "{s+=\$1} END{print s}")"
    R["crunch_$n"]="rebuild ${t2} s (after generating: ${t} s), image $(stat -c %s "$img") B for $(find "$d/htdocs" -type f -printf "%s\n" | awk "{s+=\$1} END{print s}") B of files"
  done
}

for f in "${FIGS[@]}"; do
  case $f in
    kernel) fig_kernel ;;
    idle) [[ " ${FIGS[*]} " == *" kernel "* ]] || fig_kernel_idle_only ;;
    *) "fig_$f" ;;
  esac
done

result bench_loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' /)"
echo
echo "Morgana benchmarks ($MODE) — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs"
printf '%-34s %s\n' "figure" "result"
for k in boot_m boot_l boot_r boot_floor boot_h_entry boot_h_listen boot_ready boot_g_net boot_g_lease boot_g_listen \
         size_hello_unix size_hello_xen size_hello_qemu size_hello_xen_only \
         size_static_website_unix size_static_website_xen size_static_website_qemu size_static_website_xen_only \
         size_static_website_nocontent_unix size_static_website_nocontent_xen \
         size_static_website_nocontent_qemu size_static_website_nocontent_xen_only \
         size_static_website_nocontent_boot_unix size_static_website_nocontent_boot_xen \
         size_static_website_nocontent_boot_qemu size_static_website_nocontent_boot_xen_only mem \
         unix_small unix_100k kernel_small kernel_100k idle reconf crunch_100 crunch_1000 crunch_5000; do
  [ -n "${R[$k]:-}" ] || continue
  case $k in
    boot_m) l="boot: morgana first 200 (s)" ;; boot_l) l="boot: linux guest first 200 (s)" ;;
    boot_r) l="boot: linux / morgana" ;; boot_floor) l="boot: QEMU+firmware floor" ;; boot_h_entry) l="boot: PVH entry (host time)" ;; boot_h_listen) l="boot: 'serving' line (host time)" ;; boot_ready) l="boot: 'ready in' (guest)" ;;
    boot_g_net) l="boot: guest virtio-net up at" ;; boot_g_lease) l="boot: guest DHCP lease at" ;;
    boot_g_listen) l="boot: guest listening at" ;; mem) l="memory: smallest -m serving 1 MB" ;;
    idle) l="idle CPU (QEMU process)" ;; reconf) l="reconfigure -> image" ;;
    *) l=$k ;;
  esac
  printf '%-34s %s\n' "$l" "${R[$k]}"
done
echo "(name=value lines: $BENCH_OUT)"
