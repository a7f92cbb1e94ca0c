#!/usr/bin/env python3
"""The cluster benchmark's workloads on mpi4py.futures (issue 14, point 5).

tools/bench_cluster.cc measures the same workloads on procpool's cluster pool;
tools/bench_cluster.sh runs both under the same launcher and rank count and
sets the figures side by side (see tools/BENCHMARKS.md, "On a cluster").

Run it under mpi4py.futures' own launcher, which makes rank 0 run this script
and every other rank a worker of its MPIPoolExecutor:

  PROCPOOL_BENCH_LAUNCH_TIME=$(date +%s.%N) \\
  mpirun --allow-run-as-root --oversubscribe --enable-recovery -n 3 \\
      -x PROCPOOL_BENCH_LAUNCH_TIME \\
      /usr/bin/python3 -m mpi4py.futures tools/bench_mpi4py.py [--json] [--quick]

(/usr/bin/python3 sees Debian's python3-mpi4py.) The workers import this file
as the module __worker__ to find the task functions, so everything that
measures stays under `if __name__ == "__main__"`.

The workloads, in this order, on one MPIPoolExecutor():
  first_result_from_launch_ms  wall clock from PROCPOOL_BENCH_LAUNCH_TIME (the
                               driver's `date +%s.%N` just before the launch
                               line) to the first result; skipped without it
  first_result_in_program_ms   (extra) executor construction to that result
  roundtrip_us_p50 / _p99      sequential submit(noop).result()
  submit_throughput_tasks_per_s  N no-op submits, then result() on all
  map_chunk1000_items_per_s    map(ident, range(N), chunksize=1000)
  echo_1MiB_MB_per_s           a 1 MiB bytes object out and back, sequentially

Output: a table, or with --json one line per figure on stdout:
  {"system": "mpi4py-futures", "metric": "roundtrip_us_p50", "value": 812.3}
and one line {"system": ..., "metric": "workers", "value": N} (the distinct
worker pids seen in the warm-up). Progress goes to stderr.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

SYSTEM = "mpi4py-futures"
LAUNCH_TIME_ENV = "PROCPOOL_BENCH_LAUNCH_TIME"

# --- The tasks (tools/bench_cluster.cc has their C++ twins) ------------------


def noop():
    pass


def ident(x):
    return x


def echo(b):
    return b


def getpid():
    return os.getpid()


# --- Measuring -----------------------------------------------------------------


def log(text):
    sys.stderr.write("bench_mpi4py: %s\n" % text)
    sys.stderr.flush()


def reps_note(n):
    return "1 run" if n == 1 else "median of %d runs" % n


def percentile(sorted_values, p):
    """Nearest rank, as tools/bench."""
    rank = max(1, min(len(sorted_values), math.ceil(p / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


def launch_time():
    """The driver's launch time (seconds since the epoch), or None."""
    value = os.environ.get(LAUNCH_TIME_ENV, "")
    try:
        return float(value) if value else None
    except ValueError:
        log("ignoring %s=%r: not a number" % (LAUNCH_TIME_ENV, value))
        return None


def warm_up(pool):
    """Bursts of getpid until no new worker shows up for 5 bursts (at least
    10 bursts, at most 100); then 100 sequential no-ops. Returns the distinct
    worker pids seen (the pool's size: MPIPoolExecutor's workers are the
    other ranks, all started before the first task)."""
    pids = set()
    stable = 0
    for burst in range(100):
        before = len(pids)
        pids.update(f.result() for f in [pool.submit(getpid) for _ in range(16)])
        stable = stable + 1 if len(pids) == before else 0
        if burst >= 9 and stable >= 5:
            break
    for _ in range(100):
        pool.submit(noop).result()
    return pids


def run_roundtrip(pool, args):
    for _ in range(200):
        pool.submit(noop).result()  # warm-up
    us = []
    for _ in range(args.roundtrips):
        start = time.perf_counter()
        pool.submit(noop).result()
        us.append((time.perf_counter() - start) * 1e6)
    us.sort()
    note = "%d sequential submit(noop).result()" % args.roundtrips
    return [("roundtrip_us_p50", percentile(us, 50), "us", note),
            ("roundtrip_us_p99", percentile(us, 99), "us", note)]


def run_submit(pool, args):
    n = args.submit_tasks
    for f in [pool.submit(noop) for _ in range(max(n // 10, 1))]:
        f.result()  # warm-up
    rates = []
    for _ in range(args.reps):
        start = time.perf_counter()
        fs = [pool.submit(noop) for _ in range(n)]
        for f in fs:
            f.result()
        rates.append(n / (time.perf_counter() - start))
    return [("submit_throughput_tasks_per_s", statistics.median(rates), "tasks/s",
             "%d no-op submits, then result() all; %s" % (n, reps_note(args.reps)))]


def run_map(pool, args):
    n = args.map_items
    inputs = list(range(n))
    for _ in pool.map(ident, inputs[:max(n // 10, 1)], chunksize=args.map_chunksize):
        pass  # warm-up
    rates = []
    for _ in range(args.reps):
        start = time.perf_counter()
        total = sum(pool.map(ident, inputs, chunksize=args.map_chunksize))
        rates.append(n / (time.perf_counter() - start))
        if total != n * (n - 1) // 2:
            raise RuntimeError("map: wrong results")
    return [("map_chunk%d_items_per_s" % args.map_chunksize, statistics.median(rates),
             "items/s", "map(ident) over %d ints, chunksize %d; %s" % (
                 n, args.map_chunksize, reps_note(args.reps)))]


def run_echo(pool, args, workers):
    size = 1 << 20
    payload = bytes((i * 131) & 0xFF for i in range(256)) * (size // 256)
    # Warm-up and check, once per worker at the same time (the first big
    # message grows each worker's buffers), as tools/bench_cluster.cc.
    for f in [pool.submit(echo, payload) for _ in range(max(workers, 1))]:
        if f.result() != payload:
            raise RuntimeError("echo: the payload came back changed")
    start = time.perf_counter()
    for _ in range(args.echo_reps):
        if len(pool.submit(echo, payload).result()) != size:
            raise RuntimeError("echo: wrong size came back")
    secs = time.perf_counter() - start
    return [("echo_1MiB_MB_per_s", 2.0 * size * args.echo_reps / 1e6 / secs, "MB/s",
             "1 MiB out and back, 2 x size x %d sequential runs / time "
             "(MB = 1e6 bytes)" % args.echo_reps)]


def run_all(args):
    """Every workload on one MPIPoolExecutor; returns (workers, figures)."""
    from mpi4py.futures import MPIPoolExecutor

    launched = launch_time()
    start = time.perf_counter()
    with MPIPoolExecutor() as pool:
        pool.submit(getpid).result()
        now = time.time()
        in_program_ms = (time.perf_counter() - start) * 1e3
        figures = []
        if launched is not None:
            figures.append(("first_result_from_launch_ms", (now - launched) * 1e3, "ms",
                            "launch line to the first result (wall clock), 1 run"))
        else:
            log("%s is not set: no first_result_from_launch_ms" % LAUNCH_TIME_ENV)
        figures.append(("first_result_in_program_ms", in_program_ms, "ms",
                        "MPIPoolExecutor() to the first result, 1 run"))
        log("warm-up")
        workers = len(warm_up(pool))
        log("%d workers" % workers)
        for name, run in (("roundtrip", run_roundtrip), ("submit", run_submit),
                          ("map", run_map),
                          ("echo", lambda p, a: run_echo(p, a, workers))):
            if name not in args.only:
                continue
            t = time.perf_counter()
            figures += run(pool, args)
            log("%s done (%.1f s)" % (name, time.perf_counter() - t))
    return workers, figures


# --- Driver --------------------------------------------------------------------

WORKLOADS = ["roundtrip", "submit", "map", "echo"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="JSON lines on stdout")
    p.add_argument("--quick", action="store_true",
                   help="shrink every workload to a smoke run (figures meaningless)")
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help="comma-separated subset of: " + ", ".join(WORKLOADS) +
                   " (the first result is always measured)")
    p.add_argument("--reps", type=int, default=3, help="throughput repetitions (median)")
    p.add_argument("--roundtrips", type=int, default=2000)
    p.add_argument("--submit-tasks", type=int, default=20000)
    p.add_argument("--map-items", type=int, default=100000)
    p.add_argument("--map-chunksize", type=int, default=1000)
    p.add_argument("--echo-reps", type=int, default=50)
    args = p.parse_args(argv)
    if args.quick:
        args.reps = 1
        args.roundtrips = 100
        args.submit_tasks = 500
        args.map_items = 5000
        args.echo_reps = 2
    args.only = [w for w in args.only.split(",") if w]
    for w in args.only:
        if w not in WORKLOADS:
            p.error("unknown workload %r (known: %s)" % (w, ", ".join(WORKLOADS)))
    return args


def print_table(workers, figures, out):
    width = max([6] + [len(f[0]) for f in figures])
    out.write("%s: %d workers\n" % (SYSTEM, workers))
    out.write("%-*s  %12s  %-8s  %s\n" % (width, "metric", "value", "unit", "how"))
    out.write("-" * (width + 64) + "\n")
    for metric, value, unit, note in figures:
        shown = "%.0f" % value if value >= 1000 else (
            "%.1f" % value if value >= 10 else "%.3f" % value)
        out.write("%-*s  %12s  %-8s  %s\n" % (width, metric, shown, unit, note))
    out.flush()


def main(argv):
    args = parse_args(argv)
    workers, figures = run_all(args)
    if args.json:
        print(json.dumps({"system": SYSTEM, "metric": "workers", "value": workers}))
        for metric, value, _, _ in figures:
            print(json.dumps({"system": SYSTEM, "metric": metric,
                              "value": round(value, 3)}))
        sys.stdout.flush()
    else:
        print_table(workers, figures, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
