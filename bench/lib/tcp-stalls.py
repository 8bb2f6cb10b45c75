#!/usr/bin/env python3
"""Where a TCP download's time went, from a capture taken on the receiver's side.

    python3 bench/lib/tcp-stalls.py CAPTURE.pcap SERVER_PORT

Reads `tcpdump -r -nn -tt` output (one connection per capture, as bench/lossy.sh's
LOSSY_PCAP writes them) and prints:
- the time spent in silences of >= 0.5 s with nothing from the server (stalls);
- retransmissions: a server segment starting below the highest sequence number already
  sent; one that follows a stall is counted as a retransmission timeout (RTO), the
  rest (fast retransmits and what a go-back-N resends after an RTO) together;
- the client's duplicate ACKs (no payload, same ACK number as the ACK before), how
  many carried a window different from that ACK's, the holes they reported (runs of
  duplicate ACKs for one ACK number) and how many holes' first duplicate ACK carried a
  changed window (smoltcp 0.14 does not count those as duplicates).
"""
import re
import subprocess
import sys


def main():
    pcap, port = sys.argv[1], sys.argv[2]
    out = subprocess.run(
        ["tcpdump", "-r", pcap, "-nn", "-tt", "tcp"], capture_output=True, text=True, check=True
    ).stdout
    server = re.compile(
        r"^(\S+) IP \S+\.%s > \S+: Flags \[[^\]]*\](?:, seq (\d+):(\d+))?" % port
    )
    client = re.compile(
        r"^(\S+) IP \S+ > \S+\.%s: Flags \[[^\]]*\].*?ack (\d+), win (\d+).*length (\d+)" % port
    )
    first = last = last_server = max_end = None
    stalls, rtos, others = 0.0, [], 0
    last_ack = last_win = hole = None
    dups = dups_changed = holes = holes_changed = 0
    for line in out.splitlines():
        m = server.match(line)
        if m:
            t = float(m.group(1))
            first = t if first is None else first
            last = t
            gap = t - last_server if last_server is not None else 0.0
            if gap >= 0.5:
                stalls += gap
            if m.group(2):
                start, end = int(m.group(2)), int(m.group(3))
                if max_end is not None and start < max_end:
                    if gap >= 0.5:
                        rtos.append((round(t - first, 2), round(gap, 2)))
                    else:
                        others += 1
                max_end = end if max_end is None else max(max_end, end)
            last_server = t
            continue
        m = client.match(line)
        if m:
            ack, win, length = int(m.group(2)), int(m.group(3)), int(m.group(4))
            if length == 0 and ack == last_ack:
                dups += 1
                dups_changed += win != last_win
                if ack != hole:
                    hole = ack
                    holes += 1
                    holes_changed += win != last_win
            last_ack, last_win = ack, win
    if first is None:
        sys.exit(f"{pcap}: no segments from port {port}")
    print(f"duration {last - first:.2f} s, stalls >= 0.5 s: {stalls:.2f} s")
    print(f"retransmission timeouts {len(rtos)} (at s, after s: {rtos})")
    print(f"other retransmitted segments {others}")
    print(f"duplicate ACKs {dups}, {dups_changed} with a changed window")
    print(f"holes reported {holes}, {holes_changed} whose first duplicate ACK changed the window")


if __name__ == "__main__":
    main()
