#!/usr/bin/env bash
# Runs procpool's benchmarks (//tools:bench, -c opt) and the same workloads on
# Python's pools (tools/bench_python.py: CPython fork + forkserver, loky,
# pebble; numpy in shared_memory for the arrays) in one go, then prints the
# figures and ratios side by side (tools/bench_compare.py; see
# tools/BENCHMARKS.md).
#
# Usage:
#   bash tools/bench_compare.sh [--transport=unix[,shm,...]] [--start_method=M]
#                               [--quick] [--out=DIR] [--no-install]
#                               [--only=W,...] [--systems=S,...]
#                               [--cpus=LIST]
#
#   --transport     transports to measure, comma-separated (default: unix); each
#                   gets a column and a ratio column
#   --start_method  start method of procpool's pools for all but first_result
#                   (default forkserver, as the cpython-forkserver baseline)
#   --quick         smoke run: every workload shrunk (figures meaningless)
#   --out=DIR       keep the raw JSON lines there (default: a temp dir, removed)
#   --no-install    do not apt-get install python3-joblib / python3-pebble
#   --only          workloads on both sides (first_result, submit, map,
#                   roundtrip, echo, arrays, crash; default all)
#   --systems       Python's systems (cpython-fork, cpython-forkserver, loky,
#                   pebble, cpython-shm; default all)
#   --cpus          run both sides on these CPUs only (taskset's list, e.g. 0
#                   or 0-3): a pool on fewer CPUs than its busy threads, as in
#                   a one-CPU container or an oversubscribed host
#
# Environment: PYTHON (default /usr/bin/python3, which sees Debian's
# python3-joblib and python3-pebble), BAZEL (default bazel), BENCH_BINARY (an
# already built -c opt tools/bench to run instead of `bazel run`, e.g. a copy
# of bazel-out/k8-opt/bin/tools/bench: no wait on a busy Bazel server).
set -euo pipefail

cd "$(dirname "$0")/.."

transports=unix
bench_flags=()
py_flags=()
out=""
install=1
pin=()
for arg in "$@"; do
  case "$arg" in
    --transport=*) transports="${arg#--transport=}" ;;
    --start_method=*) bench_flags+=("$arg") ;;
    --quick)
      bench_flags+=(--quick)
      py_flags+=(--quick)
      ;;
    --out=*) out="${arg#--out=}" ;;
    --only=*)
      bench_flags+=("$arg")
      py_flags+=("$arg")
      ;;
    --systems=*) py_flags+=("$arg") ;;
    --no-install) install=0 ;;
    --cpus=*) pin=(taskset -c "${arg#--cpus=}") ;;
    -h | --help)
      sed -n '2,27p' "$0"
      exit 0
      ;;
    *)
      echo "bench_compare.sh: unknown argument: $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
  if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
fi
BAZEL="${BAZEL:-bazel}"

log() { echo "bench_compare.sh: $*" >&2; }

# loky (python3-joblib) and pebble (python3-pebble) from Debian, if missing.
if ((install)) && command -v dpkg >/dev/null 2>&1; then
  missing=()
  for pkg in python3-joblib python3-pebble; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    SUDO=()
    if [[ "$(id -u)" -ne 0 ]]; then
      if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else SUDO=(false); fi
    fi
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
      log "install failed; running apt-get update and retrying"
      "${SUDO[@]}" apt-get update >&2 &&
        "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >&2 ||
        log "could not install ${missing[*]}: those systems will be skipped"
    fi
  fi
fi

if [[ -n "$out" ]]; then
  mkdir -p "$out"
else
  out="$(mktemp -d "${TMPDIR:-/tmp}/bench_compare.XXXXXX")"
  trap 'rm -rf "$out"' EXIT
fi

files=()
IFS=, read -r -a transport_list <<<"$transports"
for t in "${transport_list[@]}"; do
  if [[ -n "${BENCH_BINARY:-}" ]]; then
    log "procpool, transport $t: $BENCH_BINARY --json --transport=$t ${bench_flags[*]}"
    ${pin[@]+"${pin[@]}"} "$BENCH_BINARY" --json --transport="$t" "${bench_flags[@]}" \
      | grep '^{' >"$out/procpool-$t.jsonl"
  else
    log "procpool, transport $t: $BAZEL run -c opt //tools:bench -- --json --transport=$t ${bench_flags[*]}"
    ${pin[@]+"${pin[@]}"} "$BAZEL" run -c opt //tools:bench -- --json --transport="$t" "${bench_flags[@]}" \
      | grep '^{' >"$out/procpool-$t.jsonl"
  fi
  files+=("$out/procpool-$t.jsonl")
done

log "python: $PYTHON tools/bench_python.py --json ${py_flags[*]}"
${pin[@]+"${pin[@]}"} "$PYTHON" tools/bench_python.py --json "${py_flags[@]}" >"$out/python.jsonl" ||
  log "bench_python.py reported an error; comparing what it printed"
files+=("$out/python.jsonl")

echo
echo "machine: $(nproc) CPUs${pin[*]:+ (run under ${pin[*]})}, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(uname -sr)"
echo "command: bash tools/bench_compare.sh $*"
echo
"$PYTHON" tools/bench_compare.py "${files[@]}"
