#!/usr/bin/env bash
# Reference web server on loopback: nginx, one worker, access log off, sendfile on,
# keep-alive unlimited.
#   nginx.sh start PORT DIR   serve DIR on 127.0.0.1:PORT (installs nginx-light with apt-get if missing)
#   nginx.sh stop PORT
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
CACHE=$BENCH_CACHE/nginx
mkdir -p "$CACHE"
cmd=${1:-}; port=${2:-}
case "$cmd" in
  start)
    dir=$(cd "${3:?dir}" && pwd)
    command -v nginx >/dev/null || apt_need nginx-light
    cat > "$CACHE/$port.conf" <<CONF
worker_processes 1;
daemon on;
error_log $CACHE/$port.err;
pid $CACHE/$port.pid;
events { worker_connections 4096; }
http {
  access_log off; sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  include /etc/nginx/mime.types;
  server { listen 127.0.0.1:$port; root $dir; etag on; }
}
CONF
    nginx -c "$CACHE/$port.conf" -e "$CACHE/$port.err" 2>/dev/null || nginx -c "$CACHE/$port.conf"
    wait_http "http://127.0.0.1:$port/" 50 0.1 || { echo "nginx did not start" >&2; exit 1; }
    ;;
  stop)
    if [ -f "$CACHE/$port.pid" ]; then kill "$(cat "$CACHE/$port.pid")" 2>/dev/null || true; rm -f "$CACHE/$port.pid"; fi ;;
  *) sed -n '2,5p' "$0"; exit 2 ;;
esac
