#!/usr/bin/env python3
"""Summon latency of an appliance image under morgana-tender (bench/summon.sh runs this,
inside its network namespace).

  summon_bench.py TENDER IMAGE IP MAC TAP SUMMONS INDEX_HTML

Summoned: `morgana-tender --summon --idle-ms 100` holds the tap; before every request the
guest is stopped (the bench waits for the tender's line saying so, then 50 ms for the next
VM to be prepared); one `curl http://IP:8080/` per summon: its time_connect,
time_starttransfer and time_total, the body compared with INDEX_HTML, and the tender's
own line (wake-up frame -> guest's first frame, SYNs the guest saw). The client has a
permanent neighbour entry for IP, so its SYN is the frame that summons the guest.
Reference (same run, same tender, same image): the same curl to a guest that stays up.

Prints name=value lines. Every wait has a timeout."""
import statistics, subprocess, sys, time

from tender_bench import Tender, report  # the same directory


def curl(url, index):
    """(connect, first byte, total) in ms for one GET, the body checked."""
    r = subprocess.run(
        ["curl", "-s", "-S", "--max-time", "10", "-o", "-", "-w",
         "\n%{http_code} %{time_connect} %{time_starttransfer} %{time_total}", url],
        capture_output=True, timeout=30)
    body, _, tail = r.stdout.rpartition(b"\n")
    fields = tail.decode().split()
    if r.returncode != 0 or fields[0] != "200" or body != index:
        raise SystemExit(f"GET {url}: curl {r.returncode} {tail!r} {r.stderr!r}, "
                         f"{len(body)} bytes (expected {len(index)})")
    return tuple(float(x) * 1e3 for x in fields[1:])


def main():
    tender, image, ip, mac, tap, summons, index = sys.argv[1:8]
    summons = int(summons)
    index = open(index, "rb").read()
    url = f"http://{ip}:8080/"
    base = [tender, "--tap", tap, "--mac", mac, "--memory-mib", "32", "--summon"]
    guest = [image, f"--ipv4={ip}/24"]

    t = Tender(base + ["--idle-ms", "100"] + guest)
    conn, first, total, guest_side, retrans, stray = [], [], [], [], 0, 0
    try:
        t.expect("the guest boots on the first frame")
        time.sleep(0.05)
        held_rss = t.rss_kib()
        for n in range(summons):
            c, f, tt = curl(url, index)
            while True:
                line = t.expect("stopped: ")
                if "woken by TCP SYN" in line:
                    break
                stray += 1  # a late segment of the previous connection summoned a guest
            if "(1 TCP SYN)" not in line or "stopped: idle" not in line:
                retrans += 1
                print(f"summon_bench: {line}", file=sys.stderr)
            reply = line.split("first reply after ")[1].split(" ms")[0]
            if reply != "never":
                guest_side.append(float(reply))
            conn.append(c)
            first.append(f)
            total.append(tt)
            time.sleep(0.05)  # the next VM is prepared after the stop
    finally:
        t.stop()
    report("site_summon_curl_connect", conn, "ms", 2)
    report("site_summon_curl_first_byte", first, "ms", 2)
    report("site_summon_curl_total", total, "ms", 2)
    report("site_summon_wake_to_guest_reply", guest_side, "ms", 2)
    print(f"site_summon_retransmitted_syns_or_failures={retrans}")
    print(f"site_summon_stray_summons={stray}")
    print(f"site_summon_tender_rss_while_stopped_kib={held_rss}")

    # Reference: the guest stays up (the first request summons it, the rest find it up).
    t = Tender(base + ["--idle-ms", "600000"] + guest)
    warm = []
    try:
        t.expect("the guest boots on the first frame")
        curl(url, index)
        for _ in range(summons):
            warm.append(curl(url, index)[2])
        time.sleep(0.05)
        up_rss = t.rss_kib()
    finally:
        t.stop()
    report("site_warm_curl_total", warm, "ms", 2)
    print(f"site_tender_rss_while_running_kib={up_rss}")
    print(f"site_summon_vs_warm_total_ratio="
          f"{statistics.median(total) / statistics.median(warm):.1f}")


main()
