#!/usr/bin/env python3
"""Sets benchmark figures side by side: procpool's against Python's pools.

Reads the JSON lines of tools/bench --json and tools/bench_python.py --json
({"system": S, "metric": M, "value": V}) from the files named on the command
line and prints a Markdown table: one row per metric, one column per system,
then for each procpool system its ratio against the baseline system
(cpython-forkserver unless --baseline says otherwise), and against the best
Python system of each row.

A ratio above 1 means procpool is better by that factor:
  throughput (metrics ending in _per_s):         procpool / python
  times (roundtrip_us_*, crash_detect_ms,
         first_result_ms_*, array_roundtrip_*,
         transform_*):                           python / procpool

Usage: bench_compare.py [--baseline=SYSTEM] FILE...
"""

import argparse
import json
import sys

METRICS = [
    "submit_throughput_tasks_per_s",
    "map_chunk256_items_per_s",
    "roundtrip_us_p50",
    "roundtrip_us_p99",
    "echo_1MiB_MB_per_s",
    "echo_64MiB_MB_per_s",
    "array_roundtrip_64MiB_us",
    "array_roundtrip_1GiB_us",
    "transform_1GiB_ms",
    "transform_1GiB_threads_ms",
    "crash_detect_ms",
    "first_result_ms_fork",
    "first_result_ms_forkserver",
    "first_result_ms_forkserver_cold",
    "first_result_ms_spawn",
]
PYTHON_SYSTEMS = ["cpython-fork", "cpython-forkserver", "loky", "pebble",
                  "cpython-shm"]


def higher_is_better(metric):
    return metric.endswith("_per_s")


def fmt(v):
    if v is None:
        return "-"
    if v >= 1000:
        return "{:,.0f}".format(v)
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", default="cpython-forkserver")
    p.add_argument("files", nargs="+")
    args = p.parse_args(argv)

    values = {}  # (system, metric) -> value
    systems, metrics = [], []
    for path in args.files:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                values[(r["system"], r["metric"])] = float(r["value"])
                if r["system"] not in systems:
                    systems.append(r["system"])
                if r["metric"] not in metrics:
                    metrics.append(r["metric"])
    ours = [s for s in systems if s.startswith("procpool-")]
    theirs = [s for s in PYTHON_SYSTEMS if s in systems] + [
        s for s in systems if s not in ours and s not in PYTHON_SYSTEMS]
    rows = [m for m in METRICS if m in metrics] + [m for m in metrics if m not in METRICS]

    header = ["metric"] + ours + theirs + [
        "%s vs %s" % (s, args.baseline) for s in ours] + [
        "%s vs best python" % s for s in ours]
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"]
    for m in rows:
        cells = [m] + [fmt(values.get((s, m))) for s in ours + theirs]
        base = values.get((args.baseline, m))
        for s in ours:
            v = values.get((s, m))
            if v is None or base is None or v <= 0 or base <= 0:
                cells.append("-")
            else:
                ratio = v / base if higher_is_better(m) else base / v
                cells.append("%.2fx" % ratio)
        # Against the best of Python's columns for this row (the issues'
        # "ahead of every Python row").
        python = [values[(s, m)] for s in theirs
                  if (s, m) in values and values[(s, m)] > 0]
        best = (max(python) if higher_is_better(m) else min(python)) if python else None
        for s in ours:
            v = values.get((s, m))
            if v is None or best is None or v <= 0:
                cells.append("-")
            else:
                cells.append("%.2fx" % (v / best if higher_is_better(m) else best / v))
        out.append("| " + " | ".join(cells) + " |")
    print("\n".join(out))
    print("\nRatios: above 1 means procpool is better by that factor "
          "(throughput: procpool/python; times: python/procpool). "
          "Baseline: %s." % args.baseline)
    missing = [s for s in [args.baseline] if s not in systems]
    if missing:
        print("note: baseline %s has no figures" % missing[0], file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
