#!/usr/bin/env bash
# The build cost of an appliance (issue 9's measure): a clean `cargo build --release -p
# APPLIANCE` of this tree against the same build of a base revision, in the same run,
# each from an empty target directory; then the rebuild after an edit of appliance.ron.
#
#   bench/build-cost.sh [REPS] [BASE_REV] [APPLIANCE]
#
# REPS       clean builds of each tree, interleaved base/head (default 1)
# BASE_REV   the reference tree (default 5d79611: main on 2026-11-26, the tree issue 9 was
#            filed against, before the catalog moved to serde/ron/minijinja/rkyv)
# APPLIANCE  default static-website
# JOBS       cargo -j (default: all cores)
#
# The figure that holds on a shared machine is CPU time (user + sys of cargo and every
# compiler it ran, from getrusage of the waited-for children), not wall time; both are
# printed. Each tree is exported with `git archive` into $BENCH_SCRATCH (no state shared
# with this worktree: a committed tree is what is measured, so commit first). Crates come
# from ~/.cargo (offline after the first fetch). `cargo build --timings` reports land in
# the scratch target directories, for the crate-by-crate view.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${1:-1}
BASE=${2:-5d79611}
APP=${3:-static-website}
SCRATCH=${BENCH_SCRATCH:-/tmp/morgana-bench}/build-cost
JOBS=${JOBS:-$(nproc)}
HEAD_REV=$(git rev-parse --short HEAD)
if ! git diff --quiet HEAD -- . ':!bench' ':!docs'; then
    echo "build-cost: the working tree has uncommitted changes outside bench/ and docs/;" \
        "HEAD ($HEAD_REV) is measured without them" >&2
fi

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
for rev in "$BASE" "$HEAD_REV"; do
    mkdir -p "$SCRATCH/$rev"
    git archive "$rev" | tar -x -C "$SCRATCH/$rev"
done

exec python3 - "$SCRATCH" "$BASE" "$HEAD_REV" "$APP" "$REPS" "$JOBS" <<'EOF'
import os, resource, shutil, statistics, subprocess, sys, time

scratch, base, head, app, reps, jobs = sys.argv[1:]
reps = int(reps)


def run(tree, target, args):
    """cargo ARGS in TREE; returns (cpu seconds of all children, wall seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(
        ["cargo", *args, "-j", jobs, "--target-dir", target],
        cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=3600)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"build-cost: cargo {' '.join(args)} failed in {tree}:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def load():
    """The machine's 1-minute load average: other work slows the compilers a little even
    in CPU time (caches, frequency), and a lot in wall time."""
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


cpu = {base: [], head: []}
wall = {base: [], head: []}
rebuild = {base: [], head: []}
for rep in range(reps):
    for rev in (base, head):
        tree = os.path.join(scratch, rev)
        target = os.path.join(scratch, f"target-{rev}")
        shutil.rmtree(target, ignore_errors=True)
        # Fetch outside the measurement (normally a no-op: ~/.cargo has the crates).
        subprocess.run(["cargo", "fetch", "--quiet"], cwd=tree, check=True, timeout=600)
        c, w = run(tree, target, ["build", "--release", "-p", app, "--timings", "--quiet"])
        cpu[rev].append(c)
        wall[rev].append(w)
        ron = os.path.join(tree, "appliances", app, "appliance.ron")
        with open(ron, "a") as f:
            f.write(f"\n// edited by bench/build-cost.sh, repetition {rep}\n")
        c2, w2 = run(tree, target, ["build", "--release", "-p", app, "--quiet"])
        rebuild[rev].append(w2)
        print(f"build_cost_{'base' if rev == base else 'head'}_rep{rep}="
              f"cpu {c:.1f} s, wall {w:.1f} s; rebuild after an appliance.ron edit: "
              f"wall {w2:.1f} s, cpu {c2:.1f} s; load average {load()}", flush=True)

med = {rev: statistics.median(v) for rev, v in cpu.items()}
print()
print(f"clean cargo build --release -p {app} (-j{jobs}), median of {reps}:")
for rev, label in ((base, "base"), (head, "head")):
    print(f"  {label} {rev}: cpu {med[rev]:.1f} s (all {', '.join(f'{x:.1f}' for x in cpu[rev])}),"
          f" wall {statistics.median(wall[rev]):.1f} s,"
          f" appliance.ron edit -> rebuilt in {statistics.median(rebuild[rev]):.1f} s")
ratio = med[head] / med[base]
print(f"build_cost_cpu_ratio={ratio:.2f} (head/base; issue 9's goal: <= 1.20)")
print(f"build_cost_rebuild_s={statistics.median(rebuild[head]):.1f} (issue 9's goal: <= 10 s)")
print(f"timings: {scratch}/target-{head}/cargo-timings/cargo-timing.html (and target-{base})")
EOF
