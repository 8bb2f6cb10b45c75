# Shared helpers for bench/*.sh (sourced, not executed).
# Cache for downloaded references: $MORGANA_BENCH_CACHE (default ~/.cache/morgana-bench).
BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_CACHE=${MORGANA_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/morgana-bench}
BENCH_TARGET=${CARGO_TARGET_DIR:-$BENCH_ROOT/target/h-bench}
mkdir -p "$BENCH_CACHE"

# QEMU flags for every guest of every figure, Morgana and the Linux reference alike: those
# of the generated deployment file (schemas/catalog.ron: no default devices, qboot instead
# of SeaBIOS, no option ROM on the NIC; see docs/benchmarks.md, figure 1).
QEMU_MACHINE_ARGS=(-accel tcg -display none -no-reboot -nodefaults -no-user-config -bios qboot.rom)
QEMU_NIC=virtio-net-pci,netdev=n0,romfile=

now() { date +%s.%N; }
# elapsed START -> seconds since START (3 decimals)
elapsed() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN{printf "%.3f", e-s}'; }

# stats V1 V2 ... -> "median min max n"
stats() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{ if(NR==0){print "nan nan nan 0"; exit}
    m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%g %g %g %d\n", m, a[1], a[NR], NR}'
}
median() { stats "$@" | cut -d' ' -f1; }
# ratio A B -> A/B with 2 decimals (or nan)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0==0 || a=="nan" || b=="nan") print "nan"; else printf "%.2f", a/b }'; }

# apt_need PKG... : install Debian packages that are missing (root, non-interactive).
apt_need() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "bench: installing ${missing[*]} (apt-get)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
}

# free_port -> an unused TCP port on 127.0.0.1
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null \
  || echo $(( 20000 + RANDOM % 20000 )); }

# wait_http URL TRIES INTERVAL [PER_TRY_TIMEOUT] -> 0 once URL answers 200.
# The per-try timeout matters under QEMU's user network: its host port accepts at once, and a
# SYN forwarded before the guest's stack is up is only retransmitted by slirp seconds later,
# so a try made too early hangs until its timeout. Keep it short to measure readiness.
wait_http() {
  local url=$1 tries=$2 iv=$3 to=${4:-1}
  for _ in $(seq 1 "$tries"); do
    [ "$(curl -s -m "$to" -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)" = 200 ] && return 0
    sleep "$iv"
  done
  return 1
}

# result NAME VALUE : one machine-readable line, also appended to $BENCH_RESULTS
result() { echo "$1=$2"; [ -n "${BENCH_RESULTS:-}" ] && echo "$1=$2" >> "$BENCH_RESULTS"; return 0; }
