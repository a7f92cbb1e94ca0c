#!/usr/bin/env bash
# procpool's cluster pool against mpi4py.futures under the same launcher and
# rank count (issue 14, point 5): runs tools/bench_cluster (C++,
# --procpool_cluster=mpi) and tools/bench_mpi4py.py (python3 -m
# mpi4py.futures) each under
#   mpirun --allow-run-as-root --oversubscribe --enable-recovery -n N
# and prints one Markdown table: each figure on both sides and the ratio
# (above 1: procpool better by that factor), with the issue's target per row.
# See tools/BENCHMARKS.md, "On a cluster: procpool vs mpi4py.futures".
#
# Usage:
#   bash tools/bench_cluster.sh [--ranks=N] [--binary=PATH] [--build] [--quick]
#                               [--runs=K] [--out=DIR]
#
#   --ranks=N      ranks on each side (default 3: rank 0 runs the workloads,
#                  the other N-1 are one worker each)
#   --binary=PATH  the bench_cluster binary (default bazel-bin/tools/bench_cluster;
#                  build it with -c opt). Nothing is built unless --build.
#   --build        first `bazel build -c opt //tools:bench_cluster` and run a
#                  copy of the result (so a later build cannot change it)
#   --quick        smoke run: every workload shrunk (the figures mean nothing)
#   --runs=K       K runs of each side, alternating (procpool, mpi4py, ...);
#                  the table shows the median and, for K > 1, min-max
#   --out=DIR      keep the raw JSON lines there (default: a temp dir, removed)
#
# Environment: PYTHON (default /usr/bin/python3, which sees Debian's
# python3-mpi4py), MPIRUN (default mpirun), BAZEL (default bazel),
# MPIRUN_FLAGS (extra flags for both mpirun lines, e.g. "--bind-to none"),
# BENCH_TIMEOUT (seconds per mpirun, default 600; 120 with --quick).
#
# Each mpirun runs under `timeout` (SIGTERM, then SIGKILL 10 s later: mpirun
# takes its ranks down with it). Cleans up: the temp dir (unless --out) and
# the binary's copy made by --build.
set -euo pipefail

cd "$(dirname "$0")/.."

ranks=3
binary=bazel-bin/tools/bench_cluster
build=0
quick=()
runs=1
out=""
for arg in "$@"; do
  case "$arg" in
    --ranks=*) ranks="${arg#--ranks=}" ;;
    --binary=*) binary="${arg#--binary=}" ;;
    --build) build=1 ;;
    --quick) quick=(--quick) ;;
    --runs=*) runs="${arg#--runs=}" ;;
    --out=*) out="${arg#--out=}" ;;
    -h | --help)
      sed -n '2,34p' "$0"
      exit 0
      ;;
    *)
      echo "bench_cluster.sh: unknown argument: $arg (see --help)" >&2
      exit 2
      ;;
  esac
done
if ! [[ "$ranks" =~ ^[0-9]+$ ]] || ((ranks < 2)); then
  echo "bench_cluster.sh: --ranks must be 2 or more (rank 0 + workers)" >&2
  exit 2
fi
if ! [[ "$runs" =~ ^[0-9]+$ ]] || ((runs < 1)); then
  echo "bench_cluster.sh: --runs must be 1 or more" >&2
  exit 2
fi

PYTHON="${PYTHON:-/usr/bin/python3}"
MPIRUN="${MPIRUN:-mpirun}"
BAZEL="${BAZEL:-bazel}"
read -r -a extra_mpirun <<<"${MPIRUN_FLAGS:-}"
if ((${#quick[@]})); then timeout_s="${BENCH_TIMEOUT:-120}"; else timeout_s="${BENCH_TIMEOUT:-600}"; fi

log() { echo "bench_cluster.sh: $*" >&2; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/bench_cluster.XXXXXX")"
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
if [[ -z "$out" ]]; then out="$tmp/out"; fi
mkdir -p "$out"

if ((build)); then
  log "$BAZEL build -c opt //tools:bench_cluster"
  "$BAZEL" build -c opt //tools:bench_cluster >&2
  cp "$("$BAZEL" info -c opt bazel-bin)/tools/bench_cluster" "$tmp/bench_cluster"
  binary="$tmp/bench_cluster"
fi
if [[ ! -x "$binary" ]]; then
  log "no binary at $binary: build it (bazel build -c opt //tools:bench_cluster)," \
    "pass --binary=PATH, or add --build"
  exit 2
fi
command -v "$MPIRUN" >/dev/null || { log "$MPIRUN not found (apt-get install openmpi-bin)"; exit 2; }
if ! "$PYTHON" -c 'import mpi4py.futures' 2>/dev/null; then
  log "$PYTHON cannot import mpi4py.futures (apt-get install python3-mpi4py)"
  exit 2
fi

launch=("$MPIRUN" --allow-run-as-root --oversubscribe --enable-recovery -n "$ranks"
  -x PROCPOOL_BENCH_LAUNCH_TIME "${extra_mpirun[@]}")

# run_side NAME OUTFILE COMMAND...: one launch, its JSON lines into OUTFILE.
run_side() {
  local name="$1" file="$2"
  shift 2
  log "$name: ${launch[*]} $*"
  local rc=0
  PROCPOOL_BENCH_LAUNCH_TIME="$(date +%s.%N)" \
    timeout --kill-after=10 "$timeout_s" "${launch[@]}" "$@" >"$file.raw" || rc=$?
  grep '^{' "$file.raw" >"$file" || true
  # mpirun --enable-recovery returns 0 whatever rank 0 did: the figures are
  # the proof that it finished.
  if ((rc != 0)) || ! grep -q '"metric": "workers"' "$file"; then
    log "$name failed (exit $rc); its output:"
    cat "$file.raw" >&2
    return 1
  fi
}

files=()
for ((r = 1; r <= runs; r++)); do
  run_side "procpool (run $r/$runs)" "$out/procpool-$r.jsonl" \
    "$binary" --procpool_cluster=mpi --json "${quick[@]}"
  run_side "mpi4py.futures (run $r/$runs)" "$out/mpi4py-$r.jsonl" \
    "$PYTHON" -m mpi4py.futures tools/bench_mpi4py.py --json "${quick[@]}"
  files+=("$out/procpool-$r.jsonl" "$out/mpi4py-$r.jsonl")
done

echo
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
echo "command: bash tools/bench_cluster.sh $*"
echo "launch:  ${launch[*]} {BINARY --procpool_cluster=mpi | $PYTHON -m mpi4py.futures tools/bench_mpi4py.py} --json"
echo
"$PYTHON" - "$ranks" "${files[@]}" <<'EOF'
"""Prints the Markdown table of tools/bench_cluster.sh from JSON lines."""
import json
import statistics
import sys

ROWS = [  # metric, unit, target (ratio procpool/mpi4py)
    ("roundtrip_us_p50", "us", 10),
    ("roundtrip_us_p99", "us", 1),
    ("submit_throughput_tasks_per_s", "tasks/s", 10),
    ("map_chunk1000_items_per_s", "items/s", 1),
    ("echo_1MiB_MB_per_s", "MB/s", 1),
    ("first_result_from_launch_ms", "ms", 1),
    ("first_result_in_program_ms", "ms", None),  # extra: not one of the rows
]
SIDES = [("procpool-cluster", "procpool"), ("mpi4py-futures", "mpi4py.futures")]

ranks = int(sys.argv[1])
values = {}  # (system, metric) -> [value per run]
for path in sys.argv[2:]:
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            values.setdefault((r["system"], r["metric"]), []).append(float(r["value"]))


def fmt(v):
    if v >= 1000:
        return "{:,.0f}".format(v)
    return "%.1f" % v if v >= 10 else "%.2f" % v


def cell(vs):
    if not vs:
        return "-"
    if len(vs) == 1:
        return fmt(vs[0])
    return "%s (%s-%s)" % (fmt(statistics.median(vs)), fmt(min(vs)), fmt(max(vs)))


for system, name in SIDES:
    w = values.get((system, "workers"), [])
    if w and any(int(x) != ranks - 1 for x in w):
        print("note: %s saw %s workers (expected %d)" % (name, sorted(set(int(x) for x in w)),
                                                         ranks - 1))
runs = len(values.get((SIDES[0][0], "workers"), []))
print("%d ranks: rank 0 + %d workers on each side; %s" % (
    ranks, ranks - 1, "1 run" if runs == 1 else "median (min-max) of %d runs" % runs))
print()
print("| metric | unit | procpool | mpi4py.futures | ratio | target |")
print("| --- | --- | ---: | ---: | ---: | --- |")
for metric, unit, target in ROWS:
    ours = values.get((SIDES[0][0], metric), [])
    theirs = values.get((SIDES[1][0], metric), [])
    ratio = "-"
    verdict = "-" if target is None else ("%gx" % target if target > 1 else "ahead")
    if ours and theirs:
        a, b = statistics.median(ours), statistics.median(theirs)
        x = a / b if unit.endswith("/s") else b / a
        ratio = "%.2fx" % x
        if target is not None:
            verdict += ": met" if x >= target and (target > 1 or x > 1) else ": MISSED"
    print("| %s | %s | %s | %s | %s | %s |" % (metric, unit, cell(ours), cell(theirs), ratio,
                                               verdict))
print()
print("Ratio: above 1 means procpool is better by that factor (throughput: "
      "procpool/mpi4py; times: mpi4py/procpool), from the medians.")
EOF
