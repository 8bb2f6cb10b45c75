#!/usr/bin/env python3
"""Figures of morgana-tender with its test guest (bench/tender.sh runs this).

  tender_bench.py start TENDER GUEST REPS
      tender start -> the guest's first console byte, the guest's exit call -> the tender's
      exit, and the tender's own figures (--stats); reference: a process that prints
      (/bin/echo) started the same way.
  tender_bench.py exits TENDER GUEST CALLS
      the cost of one call (an exit to the tender and back): a guest making CALLS calls.
  tender_bench.py summon TENDER GUEST IP MAC SUMMONS
      (inside the network namespace) client SYN -> first response byte when every request
      summons a stopped guest; reference: the same requests to a guest that stays up.

Prints name=value lines. Every loop is bounded; every wait has a timeout."""
import os, queue, socket, statistics, subprocess, sys, threading, time


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def report(name, values, unit, digits=3):
    if not values:
        print(f"{name}=nan")
        return
    print(f"{name}_median_{unit}={statistics.median(values):.{digits}f}")
    print(f"{name}_p99_{unit}={pct(values, 99):.{digits}f}")
    print(f"{name}_min_{unit}={min(values):.{digits}f}")
    print(f"{name}_max_{unit}={max(values):.{digits}f}")
    print(f"{name}_n={len(values)}")


def first_output(argv):
    """(start -> first stdout byte, last stdout byte -> exit) in ms, and stderr."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.read(1)
    t_first = time.perf_counter()
    rest = p.stdout.read()
    t_last = time.perf_counter()
    err = p.stderr.read().decode()
    p.wait(timeout=30)
    t_exit = time.perf_counter()
    if not first:
        raise SystemExit(f"no output from {argv}: {err}")
    return (t_first - t0) * 1e3, (t_exit - t_last) * 1e3, (first + rest).decode(), err


def stat_field(err, key):
    for word in err.split():
        if word.startswith(key + "="):
            return float(word.split("=", 1)[1])
    return None


def cmd_start(tender, guest, reps):
    starts, exits, ready, hwm, touched, ref = [], [], [], [], [], []
    for _ in range(reps):
        s, e, out, err = first_output([tender, "--stats", guest])
        if "exiting with status 0" not in out:
            raise SystemExit(f"the guest did not finish: {out}\n{err}")
        starts.append(s)
        exits.append(e)
        ready.append(stat_field(err, "ready_us") / 1e3)
        hwm.append(stat_field(err, "tender_hwm_kib"))
        touched.append(stat_field(err, "guest_touched_kib"))
        r, _, _, _ = first_output(["/bin/echo", "x"])
        ref.append(r)
    report("tender_start_to_first_output", starts, "ms")
    report("tender_ready", ready, "ms")
    report("reference_echo_start_to_output", ref, "ms")
    print(f"tender_start_vs_echo_ratio={statistics.median(starts) / statistics.median(ref):.1f}")
    report("tender_last_output_to_exit", exits, "ms")
    print(f"tender_hwm_kib_median={statistics.median(hwm):.0f}")
    print(f"guest_touched_kib_median={statistics.median(touched):.0f}")


def cmd_exits(tender, guest, calls):
    t0 = time.perf_counter()
    r = subprocess.run([tender, "--runaway-calls", str(calls), guest, "quiet", "runaway"],
                       capture_output=True, timeout=600)
    took = time.perf_counter() - t0
    if b"runaway" not in r.stderr:
        raise SystemExit(r.stderr.decode())
    print(f"tender_calls={calls}")
    print(f"tender_us_per_call={took / calls * 1e6:.1f}")


class Tender:
    """The tender under --summon, its stderr lines on a queue (summon_bench.py uses it too)."""

    def __init__(self, argv):
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stderr:
            self.lines.put(line.rstrip("\n"))

    def expect(self, what, timeout=30):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise SystemExit(f"tender: no line with {what!r} in {timeout} s")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if what in line:
                return line

    def rss_kib(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def stop(self):
        self.p.kill()
        self.p.wait(timeout=30)


def request(ip):
    """(SYN -> connected, SYN -> first response byte) in ms, and the response."""
    s = socket.socket()
    s.settimeout(10)
    t0 = time.perf_counter()
    s.connect((ip, 80))
    t_conn = time.perf_counter()
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    first = s.recv(1)
    t_first = time.perf_counter()
    data = first
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return (t_conn - t0) * 1e3, (t_first - t0) * 1e3, data


def cmd_summon(tender, guest, ip, mac, summons):
    base = [tender, "--tap", os.environ.get("TAP", "mbt0"), "--mac", mac, "--summon"]
    guest_args = [guest, "quiet", "serve", f"ip={ip}/24"]
    # Summoned: every request finds the guest stopped (idle 100 ms; the bench waits for
    # the stop before the next request). A segment of a finished connection that comes
    # late (a retransmitted FIN) summons a guest too: counted, not measured.
    t = Tender(base + ["--idle-ms", "100"] + guest_args)
    connect, first, guest_side, syns, stray = [], [], [], 0, 0
    try:
        t.expect("the guest boots on the first frame")
        for n in range(1, summons + 1):
            c, f, data = request(ip)
            if b"200 OK" not in data:
                raise SystemExit(f"summon {n}: {data!r}")
            while True:
                line = t.expect("stopped: ")
                if "woken by TCP SYN" in line:
                    break
                stray += 1
            if "(1 TCP SYN)" not in line:
                syns += 1
            part = line.split("first reply after ")[1].split(" ms")[0]
            guest_side.append(float(part))
            connect.append(c)
            first.append(f)
    finally:
        t.stop()
    report("summon_syn_to_synack", connect, "ms")
    report("summon_syn_to_first_byte", first, "ms")
    report("summon_wake_to_guest_reply", guest_side, "ms")
    print(f"summon_retransmitted_syns={syns}")
    print(f"summon_stray_summons={stray}")
    # Reference: the guest stays up (the first request summons it, the rest find it up).
    t = Tender(base + ["--idle-ms", "600000"] + guest_args)
    warm_first = []
    try:
        t.expect("the guest boots on the first frame")
        request(ip)
        for _ in range(summons):
            _, f, _ = request(ip)
            warm_first.append(f)
    finally:
        t.stop()
    report("warm_syn_to_first_byte", warm_first, "ms")
    print(f"summon_vs_warm_first_byte_ratio={statistics.median(first) / statistics.median(warm_first):.1f}")


def main():
    cmd = sys.argv[1]
    if cmd == "start":
        cmd_start(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "exits":
        cmd_exits(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "summon":
        cmd_summon(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
