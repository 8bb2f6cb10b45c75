#!/usr/bin/env python3
"""Boot timeline from the host side, for one guest started at START (epoch seconds).

    firstok.py START SERIAL_LOG URL TIMEOUT_S [TRY_TIMEOUT_S]

Polls, both every ~2 ms, the serial log (records the host time at which each console line
first appears) and URL (HTTP GET; a try that gets no answer in TRY_TIMEOUT_S is abandoned
and a new one started, in parallel, so one SYN lost to a guest that is not up yet does not
hide the moment it is). Prints name=value lines, times in seconds since START:
  first_console_s   first serial line seen           ready_line_s  `morgana: ready in` seen
  listening_line_s  the HTTP server's line seen      first200_s    first 200 answer received
  guest_first_ts    the guest's own timestamp on its first timestamped line (since PVH entry)
Exit status 1 if no 200 before TIMEOUT_S.
"""
import re, socket, sys, threading, time
from urllib.parse import urlparse

start, log, url, limit = float(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
try_to = float(sys.argv[5]) if len(sys.argv) > 5 else 0.5
u = urlparse(url)
host, port, path = u.hostname, u.port or 80, (u.path or "/")
req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
got = {}
done = threading.Event()

def attempt():
    try:
        s = socket.create_connection((host, port), timeout=try_to)
        s.settimeout(try_to)
        s.sendall(req)
        head = s.recv(64)
        s.close()
        if head.startswith(b"HTTP/1.") and head[9:12] == b"200" and not done.is_set():
            got["first200_s"] = time.time() - start
            done.set()
    except OSError:
        pass

def http_loop():
    while not done.is_set() and time.time() - start < limit:
        threading.Thread(target=attempt, daemon=True).start()
        time.sleep(0.01)
    done.set()

threading.Thread(target=http_loop, daemon=True).start()
seen = 0
lines = []
while not done.is_set():
    try:
        with open(log, "rb") as f:
            data = f.read()
    except OSError:
        data = b""
    if len(data) > seen:
        now = time.time() - start
        new = data[seen:].decode("utf-8", "replace")
        seen = len(data)
        for line in new.splitlines():
            if line.strip():
                lines.append((now, line))
    time.sleep(0.002)
now = time.time() - start
for t, line in lines:
    if "first_console_s" not in got:
        got["first_console_s"] = t
    m = re.match(r"\[\s*([0-9.]+)", line)
    if m and "guest_first_ts" not in got:
        got["guest_first_ts"] = float(m.group(1)); got["guest_first_host_s"] = t
    if line.startswith("morgana: ready in") and "ready_line_s" not in got:
        got["ready_line_s"] = t
    if ("listening on" in line or "serving" in line) and "listening_line_s" not in got:
        got["listening_line_s"] = t
for k, v in got.items():
    print(f"{k}={v:.3f}")
sys.exit(0 if "first200_s" in got else 1)
