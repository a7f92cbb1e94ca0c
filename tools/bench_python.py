#!/usr/bin/env python3
"""procpool's benchmark workloads on Python's process pools (issue 3).

The same workloads, sizes and metric names as tools/bench (the C++ side; see
tools/bench/workloads.h and tools/BENCHMARKS.md), measured on:

  cpython-fork        concurrent.futures.ProcessPoolExecutor, fork context
  cpython-forkserver  concurrent.futures.ProcessPoolExecutor, forkserver context
  loky                joblib.externals.loky.ProcessPoolExecutor (its default
                      "loky" context: fork+exec, like spawn)
  pebble              pebble.ProcessPool (multiprocessing's default context:
                      fork on Linux with Python 3.11)
  cpython-shm         the forkserver pool with numpy arrays in
                      multiprocessing.shared_memory (the arrays workload
                      only; the systems above pass the arrays pickled)

each with 2 workers. A library that cannot be imported is skipped with a note
on stderr (Debian: apt-get install python3-joblib python3-pebble; use
/usr/bin/python3, which sees Debian's packages).

Each system runs in a fresh interpreter (this script runs itself with
--one-system), so that "the first fork-server pool of the process" is
well-defined for first_result_ms_forkserver_cold and one library's threads do
not disturb another's figures.

Output: a table per system, or with --json one line per figure on stdout:
  {"system": "cpython-forkserver", "metric": "roundtrip_us_p50", "value": 312.5}
Progress goes to stderr.

first_result_ms_{fork,forkserver,spawn} are measured with the start method
they name (for every system that accepts it: loky refuses fork), whatever
start method the system uses for the other workloads.

Usage:
  /usr/bin/python3 tools/bench_python.py [--json] [--quick] [--systems=a,b]
"""

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

try:
    # At the top, so that a worker imports it with this module (during the
    # warm-up), not inside the first timed array task.
    import numpy as np
except ImportError:  # only the arrays workload needs it
    np = None

SYSTEMS = ["cpython-fork", "cpython-forkserver", "loky", "pebble", "cpython-shm"]
WORKLOADS = ["first_result", "submit", "map", "roundtrip", "echo", "arrays",
             "crash"]
# Systems that run only some workloads: cpython-shm is CPython's forkserver
# pool with numpy arrays in multiprocessing.shared_memory (the arrays
# workload's other way); the others pass arrays pickled.
ONLY_WORKLOADS = {"cpython-shm": ["arrays"]}
FIRST_RESULT_METHODS = ["fork", "forkserver", "spawn"]

# --- The tasks (tools/bench/tasks.h has their C++ twins) ---------------------


def noop():
    pass


def ident(x):
    return x


def echo(b):
    return b


def getpid():
    return os.getpid()


def busy_announce(directory, index, ms):
    """Creates DIR/INDEX-PID, then sleeps: the parent kills this worker."""
    open(os.path.join(directory, "%d-%d" % (index, os.getpid())), "w").close()
    time.sleep(ms / 1000.0)
    return os.getpid()


# numpy arrays (the arrays workload; tools/bench/array_workloads.h has the
# C++ twins). Pickled: the array itself is the argument and the result.


def echo_array(a):
    return a


def transform_pickled(xs):
    return _transform(xs)


# In multiprocessing.shared_memory: only the block's name travels.


def _attach(name, n):
    """The float64 array of n elements in shared memory block `name`."""
    from multiprocessing import shared_memory

    # Attaching registers the block with the resource tracker again; under
    # forkserver the workers share the parent's tracker, so that is a no-op
    # (unregistering here would drop the parent's registration).
    shm = shared_memory.SharedMemory(name=name)
    return shm, np.ndarray((n,), dtype=np.float64, buffer=shm.buf)


def echo_shm(name, n):
    shm, a = _attach(name, n)
    del a
    shm.close()
    return name


def transform_shm(xname, yname, n, part, parts):
    xshm, x = _attach(xname, n)
    yshm, y = _attach(yname, n)
    begin, end = n * part // parts, n * (part + 1) // parts
    y[begin:end] = _transform(x[begin:end])
    del x, y
    xshm.close()
    yshm.close()
    return end - begin


def _transform(xs):
    return np.sqrt(xs) * 0.5 + 1


# --- One adapter per library -------------------------------------------------


class CPython:
    """concurrent.futures.ProcessPoolExecutor with a given context."""

    def __init__(self, default_method):
        self.default_method = default_method

    def make_pool(self, workers, method=None):
        ctx = mp.get_context(method or self.default_method)
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)

    def submit(self, pool, fn, *args):
        return pool.submit(fn, *args)

    def map(self, pool, fn, items, chunksize):
        return pool.map(fn, items, chunksize=chunksize)

    def shutdown(self, pool):
        pool.shutdown(wait=True)

    def kill(self, pool):
        for p in list(getattr(pool, "_processes", {}).values()):
            try:
                p.kill()
            except Exception:
                pass
        pool.shutdown(wait=True, cancel_futures=True)


class Loky(CPython):
    def __init__(self):
        from joblib.externals import loky  # ImportError: skipped
        from joblib.externals.loky.backend.context import get_context

        self.loky = loky
        self.get_context = get_context
        self.default_method = "loky"

    def make_pool(self, workers, method=None):
        return self.loky.ProcessPoolExecutor(
            max_workers=workers,
            context=self.get_context(method or self.default_method))

    def kill(self, pool):
        pool.shutdown(wait=True, kill_workers=True)


class Pebble:
    def __init__(self):
        import pebble

        self.pebble = pebble
        self.default_method = None  # multiprocessing's default (fork)

    def make_pool(self, workers, method=None):
        method = method or self.default_method
        ctx = mp.get_context(method) if method else None
        return self.pebble.ProcessPool(max_workers=workers, context=ctx)

    def submit(self, pool, fn, *args):
        return pool.schedule(fn, args=args)

    def map(self, pool, fn, items, chunksize):
        return pool.map(fn, items, chunksize=chunksize).result()

    def shutdown(self, pool):
        pool.close()
        pool.join()

    def kill(self, pool):
        pool.stop()
        pool.join()


def make_system(name):
    if name == "cpython-fork":
        return CPython("fork")
    if name == "cpython-forkserver":
        return CPython("forkserver")
    if name == "loky":
        return Loky()
    if name == "pebble":
        return Pebble()
    if name == "cpython-shm":
        if np is None:
            raise ImportError("cpython-shm needs numpy")
        return CPython("forkserver")
    raise ValueError("unknown system %r (known: %s)" % (name, ", ".join(SYSTEMS)))


# --- Reporting -----------------------------------------------------------------


class Progress:
    """stderr: one line rewritten in place on a terminal, else begin/end lines."""

    def __init__(self, system, total_steps):
        self.system = system
        self.total = total_steps
        self.step = 0
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def begin(self, name):
        self.step += 1
        self.name = name
        self.start = time.monotonic()
        self._say("[%s %d/%d] %s ..." % (self.system, self.step, self.total, name))

    def update(self, done, total):
        now = time.monotonic()
        if not self.tty or (now - self.last < 0.1 and done < total):
            return
        self.last = now
        self._say("[%s %d/%d] %s %3d%%" % (self.system, self.step, self.total,
                                          self.name, 100 * done // max(total, 1)))

    def end(self):
        self._say("[%s %d/%d] %s done (%.1f s)" % (
            self.system, self.step, self.total, self.name,
            time.monotonic() - self.start), final=True)

    def _say(self, text, final=False):
        if self.tty:
            sys.stderr.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def reps_note(n):
    return "1 run" if n == 1 else "median of %d runs" % n


def percentile(sorted_values, p):
    """Nearest rank, as tools/bench."""
    import math

    rank = max(1, min(len(sorted_values), math.ceil(p / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


# --- The workloads (tools/bench/workloads.cc has their C++ twins) --------------


def warm_up(sysm, pool, args):
    pids = set()
    for _ in range(100):
        if len(pids) >= args.workers:
            break
        fs = [sysm.submit(pool, getpid) for _ in range(4 * args.workers)]
        pids.update(f.result() for f in fs)
    for _ in range(100):
        sysm.submit(pool, noop).result()


def first_result_ms(sysm, args, method):
    start = time.perf_counter()
    pool = sysm.make_pool(args.workers, method)
    sysm.submit(pool, getpid).result()
    ms = (time.perf_counter() - start) * 1e3
    sysm.shutdown(pool)
    return ms


def run_first_result(sysm, args, progress):
    figures = []
    total = 1 + 3 * (1 + args.first_result_reps)
    done = 0
    cold = None
    try:
        cold = first_result_ms(sysm, args, "forkserver")
    except Exception as e:  # noqa: BLE001
        print("note: %s: forkserver: %s" % (progress.system, e), file=sys.stderr)
    done += 1
    progress.update(done, total)
    for method in FIRST_RESULT_METHODS:
        if method == "fork" and isinstance(sysm, Loky):
            print("note: loky refuses the fork start method: no first_result_ms_fork",
                  file=sys.stderr)
            continue
        first_result_ms(sysm, args, method)  # warm-up
        ms = []
        for _ in range(args.first_result_reps):
            ms.append(first_result_ms(sysm, args, method))
            done += 1
            progress.update(done, total)
        note = "pool construction to first result, " + reps_note(args.first_result_reps)
        if method == "forkserver" and cold is not None:
            note += "; server already up (cold: %.2f ms)" % cold
        figures.append(("first_result_ms_" + method, statistics.median(ms), "ms", note))
        if method == "forkserver" and cold is not None:
            figures.append(("first_result_ms_forkserver_cold", cold, "ms",
                            "first pool of the process: starts the fork server"))
    if isinstance(sysm, Loky):
        first_result_ms(sysm, args, "loky")
        ms = [first_result_ms(sysm, args, "loky") for _ in range(args.first_result_reps)]
        figures.append(("first_result_ms_loky", statistics.median(ms), "ms",
                        "loky's own start method (fork+exec)"))
    return figures


def run_submit(sysm, pool, args, progress):
    n = args.submit_tasks
    for f in [sysm.submit(pool, noop) for _ in range(max(n // 10, 1))]:
        f.result()  # warm-up
    rates = []
    for r in range(args.reps):
        start = time.perf_counter()
        fs = []
        for i in range(n):
            fs.append(sysm.submit(pool, noop))
            if i & 1023 == 0:
                progress.update(r * 2 * n + i, 2 * n * args.reps)
        for i, f in enumerate(fs):
            f.result()
            if i & 1023 == 0:
                progress.update(r * 2 * n + n + i, 2 * n * args.reps)
        rates.append(n / (time.perf_counter() - start))
    return [("submit_throughput_tasks_per_s", statistics.median(rates), "tasks/s",
             "%d no-op submits, then result() all; %s" % (n, reps_note(args.reps)))]


def run_map(sysm, pool, args, progress):
    n = args.map_items
    inputs = list(range(n))
    for _ in sysm.map(pool, ident, inputs[:max(n // 10, 1)], args.map_chunksize):
        pass  # warm-up
    rates = []
    for r in range(args.reps):
        start = time.perf_counter()
        total = 0
        for i, v in enumerate(sysm.map(pool, ident, inputs, args.map_chunksize)):
            total += v
            if i & 8191 == 0:
                progress.update(r * n + i, args.reps * n)
        rates.append(n / (time.perf_counter() - start))
        if total != n * (n - 1) // 2:
            raise RuntimeError("map: wrong results")
    return [("map_chunk%d_items_per_s" % args.map_chunksize, statistics.median(rates),
             "items/s", "map(ident) over %d ints, chunksize %d; %s" % (
                 n, args.map_chunksize, reps_note(args.reps)))]


def run_roundtrip(sysm, pool, args, progress):
    for _ in range(200):
        sysm.submit(pool, noop).result()  # warm-up
    us = []
    for i in range(args.roundtrips):
        start = time.perf_counter()
        sysm.submit(pool, noop).result()
        us.append((time.perf_counter() - start) * 1e6)
        if i & 127 == 0:
            progress.update(i, args.roundtrips)
    us.sort()
    note = "%d sequential submit(noop).result()" % args.roundtrips
    return [("roundtrip_us_p50", percentile(us, 50), "us", note),
            ("roundtrip_us_p99", percentile(us, 99), "us", note)]


def run_echo(sysm, pool, args, progress):
    figures = []
    total = args.echo_small_reps + args.echo_large_reps
    done = 0
    for metric, size, reps in (("echo_1MiB_MB_per_s", 1 << 20, args.echo_small_reps),
                               ("echo_64MiB_MB_per_s", 64 << 20, args.echo_large_reps)):
        payload = bytes((i * 131) & 0xFF for i in range(256)) * (size // 256)
        if sysm.submit(pool, echo, payload).result() != payload:  # warm-up, check
            raise RuntimeError("echo: the payload came back changed")
        start = time.perf_counter()
        for _ in range(reps):
            if len(sysm.submit(pool, echo, payload).result()) != size:
                raise RuntimeError("echo: wrong size came back")
            done += 1
            progress.update(done, total)
        secs = time.perf_counter() - start
        figures.append((metric, 2.0 * size * reps / 1e6 / secs, "MB/s",
                        "bytes out and back, 2 x size x %d sequential runs / time "
                        "(MB = 1e6 bytes)" % reps))
    return figures


def run_arrays(sysm, pool, args, progress, shared):
    """array_roundtrip_64MiB_us, array_roundtrip_1GiB_us, transform_1GiB_ms:
    numpy float64 arrays pickled (shared=False) or in shared memory."""
    import numpy as np
    from multiprocessing import shared_memory

    small, big = args.array_small_bytes // 8, args.array_big_bytes // 8
    blocks = []

    def make(n):
        if not shared:
            return None, np.arange(n, dtype=np.float64) % 4096
        shm = shared_memory.SharedMemory(create=True, size=max(8, n * 8))
        blocks.append(shm)
        a = np.ndarray((n,), dtype=np.float64, buffer=shm.buf)
        a[:] = np.arange(n, dtype=np.float64) % 4096
        return shm, a

    figures = []
    done = 0
    total = 2 * args.array_roundtrip_reps + args.reps + 1
    try:
        arrays = {}
        for metric, n, reps in (("array_roundtrip_64MiB_us", small, args.array_roundtrip_reps),
                                # Pickled, 1 GiB costs seconds a trip: 3 of them.
                                ("array_roundtrip_1GiB_us", big,
                                 args.array_roundtrip_reps if shared
                                 else min(3, args.array_roundtrip_reps))):
            shm, a = make(n)
            arrays[n] = (shm, a)
            us = []
            for r in range(reps + 1):  # the first one is a warm-up
                start = time.perf_counter()
                if shared:
                    name = sysm.submit(pool, echo_shm, shm.name, n).result()
                    back_shm = shared_memory.SharedMemory(name=name)
                    back = np.ndarray((n,), dtype=np.float64, buffer=back_shm.buf)
                    ok = back[n // 2] == a[n // 2]
                    del back
                    back_shm.close()
                else:
                    back = sysm.submit(pool, echo_array, a).result()
                    ok = back.shape == a.shape and back[n // 2] == a[n // 2]
                    del back
                if r > 0:
                    us.append((time.perf_counter() - start) * 1e6)
                if not ok:
                    raise RuntimeError("arrays: the array came back changed")
                done += 1
                progress.update(done, total)
            figures.append((metric, statistics.median(us), "us",
                            "%s of %d MiB into a task that returns it; median of %d" % (
                                "numpy array in shared_memory" if shared else "pickled numpy array",
                                n * 8 >> 20, reps)))
        xshm, x = arrays[big]
        parts = args.workers
        if shared:
            yshm, y = make(big)
        ms = []
        for r in range(args.reps + 1):  # the first one faults pages in
            start = time.perf_counter()
            if shared:
                fs = [sysm.submit(pool, transform_shm, xshm.name, yshm.name, big, p, parts)
                      for p in range(parts)]
                for f in fs:
                    f.result()
            else:
                fs = [sysm.submit(pool, transform_pickled,
                                  x[big * p // parts:big * (p + 1) // parts])
                      for p in range(parts)]
                y = np.concatenate([f.result() for f in fs])
            if r > 0:
                ms.append((time.perf_counter() - start) * 1e3)
            done += 1
            progress.update(done, total)
        if abs(y[big - 1] - (np.sqrt(x[big - 1]) * 0.5 + 1)) > 1e-9:
            raise RuntimeError("arrays: wrong transform")
        figures.append(("transform_1GiB_ms", statistics.median(ms), "ms",
                        "sqrt(x)*0.5+1 over %d MiB in %d slices, %s; %s" % (
                            big * 8 >> 20, parts,
                            "each written into a shared output array" if shared
                            else "pickled out and back, concatenated",
                            reps_note(args.reps))))
        del x, y, arrays
    finally:
        for shm in blocks:
            try:
                shm.close()
            except BufferError:
                pass  # a view still exported: freed with the process
            shm.unlink()
    return figures


def crash_detect_ms(sysm, args):
    pool = sysm.make_pool(args.workers)
    warm_up(sysm, pool, args)
    directory = tempfile.mkdtemp(prefix="procpool-bench-")
    try:
        fs = [sysm.submit(pool, busy_announce, directory, i, 30000)
              for i in range(args.workers)]
        deadline = time.monotonic() + 10
        while True:
            names = [n for n in os.listdir(directory) if "-" in n]
            if names:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("crash_detect: no busy worker after 10 s")
            time.sleep(50e-6)
        index, pid = (int(x) for x in names[0].split("-"))
        start = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        # BrokenProcessPool (CPython), TerminatedWorkerError (loky),
        # ProcessExpired (pebble): any failure but a timeout counts.
        try:
            fs[index].result(timeout=20)
            failure = None
        except Exception as e:  # noqa: BLE001
            failure = e
        ms = (time.perf_counter() - start) * 1e3
        if failure is None:
            raise RuntimeError("crash_detect: the killed worker's task succeeded")
        if isinstance(failure, (cf.TimeoutError, TimeoutError)):
            raise RuntimeError("crash_detect: no failure within 20 s")
        # Whoever still sleeps in busy_announce must not outlive the pool.
        for name in os.listdir(directory):
            try:
                os.kill(int(name.split("-")[1]), signal.SIGKILL)
            except (ProcessLookupError, ValueError, IndexError):
                pass
        sysm.kill(pool)
        return ms
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)


def run_crash(sysm, args, progress):
    ms = []
    for r in range(args.crash_reps):
        ms.append(crash_detect_ms(sysm, args))
        progress.update(r + 1, args.crash_reps)
    return [("crash_detect_ms", statistics.median(ms), "ms",
             "SIGKILL a busy worker until its future fails; " + reps_note(args.crash_reps))]


def run_one_system(name, args):
    """Runs the selected workloads on `name` in this process; returns figures."""
    sysm = make_system(name)
    selected = [w for w in WORKLOADS if w in args.only and
                w in ONLY_WORKLOADS.get(name, WORKLOADS)]
    progress = Progress(name, len(selected))
    figures = []
    if "first_result" in selected:  # first: the cold fork-server figure
        progress.begin("first_result")
        figures += run_first_result(sysm, args, progress)
        progress.end()
    shared = [w for w in ("submit", "map", "roundtrip", "echo", "arrays")
              if w in selected]
    if shared:
        pool = sysm.make_pool(args.workers)
        warm_up(sysm, pool, args)
        for w in shared:
            progress.begin(w)
            if w == "arrays":
                figures += run_arrays(sysm, pool, args, progress,
                                      shared=name == "cpython-shm")
            else:
                figures += globals()["run_" + w](sysm, pool, args, progress)
            progress.end()
        sysm.shutdown(pool)
    if "crash" in selected:
        progress.begin("crash")
        figures += run_crash(sysm, args, progress)
        progress.end()
    return figures


# --- Driver --------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="JSON lines on stdout")
    p.add_argument("--quick", action="store_true",
                   help="shrink every workload to a smoke run (figures meaningless)")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help="comma-separated subset of: " + ", ".join(SYSTEMS))
    p.add_argument("--only", default=",".join(WORKLOADS),
                   help="comma-separated subset of the workloads: " + ", ".join(WORKLOADS))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--reps", type=int, default=3, help="throughput repetitions (median)")
    p.add_argument("--submit-tasks", type=int, default=20000)
    p.add_argument("--map-items", type=int, default=200000)
    p.add_argument("--map-chunksize", type=int, default=256)
    p.add_argument("--roundtrips", type=int, default=2000)
    p.add_argument("--echo-small-reps", type=int, default=50)
    p.add_argument("--echo-large-reps", type=int, default=5)
    p.add_argument("--crash-reps", type=int, default=3)
    p.add_argument("--first-result-reps", type=int, default=5)
    p.add_argument("--array-small-bytes", type=int, default=64 << 20)
    p.add_argument("--array-big-bytes", type=int, default=1 << 30)
    p.add_argument("--array-roundtrip-reps", type=int, default=20)
    p.add_argument("--one-system", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.reps = 1
        args.submit_tasks = 500
        args.map_items = 5000
        args.roundtrips = 100
        args.echo_small_reps = 2
        args.echo_large_reps = 1
        args.crash_reps = 1
        args.first_result_reps = 1
        args.array_small_bytes = 1 << 20
        args.array_big_bytes = 16 << 20
        args.array_roundtrip_reps = 2
    args.only = [w for w in args.only.split(",") if w]
    for w in args.only:
        if w not in WORKLOADS:
            p.error("unknown workload %r (known: %s)" % (w, ", ".join(WORKLOADS)))
    return args


def print_table(system, figures, out):
    width = max([6] + [len(f[0]) for f in figures])
    out.write("%s: 2 workers\n" % system)
    out.write("%-*s  %12s  %-8s  %s\n" % (width, "metric", "value", "unit", "how"))
    out.write("-" * (width + 64) + "\n")
    for metric, value, unit, note in figures:
        shown = "%.0f" % value if value >= 1000 else (
            "%.1f" % value if value >= 10 else "%.3f" % value)
        out.write("%-*s  %12s  %-8s  %s\n" % (width, metric, shown, unit, note))
    out.write("\n")
    out.flush()


def main(argv):
    args = parse_args(argv)
    if args.one_system:
        figures = run_one_system(args.one_system, args)
        for metric, value, unit, note in figures:
            # Internal format: the figure and its table columns.
            print(json.dumps({"system": args.one_system, "metric": metric,
                              "value": round(value, 3), "unit": unit, "note": note}))
        return 0
    status = 0
    for name in [s for s in args.systems.split(",") if s]:
        try:
            make_system(name)
        except ImportError as e:
            print("note: skipping %s: %s (Debian: apt-get install python3-joblib "
                  "python3-pebble; run with /usr/bin/python3)" % (name, e), file=sys.stderr)
            continue
        child = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--one-system", name] + argv,
            stdout=subprocess.PIPE, text=True)
        if child.returncode != 0:
            print("error: %s failed (exit %d); its figures are missing" % (
                name, child.returncode), file=sys.stderr)
            status = 1
            continue
        rows = [json.loads(line) for line in child.stdout.splitlines() if line.strip()]
        if args.json:
            for r in rows:
                print(json.dumps({"system": r["system"], "metric": r["metric"],
                                  "value": r["value"]}), flush=True)
        else:
            print_table(name, [(r["metric"], r["value"], r["unit"], r["note"])
                               for r in rows], sys.stdout)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
