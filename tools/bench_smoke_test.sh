#!/usr/bin/env bash
# Smoke test of tools/bench: runs it with --quick --json and checks that every
# metric name of issue 3 is printed, once, as a JSON line. No timing is
# asserted (the figures of a --quick run mean nothing).
#
# Usage (Bazel passes the binary): bench_smoke_test.sh path/to/bench [TRANSPORT]
set -euo pipefail

BENCH="$1"
TRANSPORT="${2:-unix}"
errfile="$(mktemp "${TEST_TMPDIR:-/tmp}/bench_smoke.XXXXXX")"
trap 'rm -f "$errfile"' EXIT
out="$("$BENCH" --quick --json --transport="$TRANSPORT" 2>"$errfile")" || {
  echo "bench failed:" >&2
  cat "$errfile" >&2
  exit 1
}
echo "$out"

status=0
for metric in submit_throughput_tasks_per_s map_chunk256_items_per_s \
  roundtrip_us_p50 roundtrip_us_p99 echo_1MiB_MB_per_s echo_64MiB_MB_per_s \
  crash_detect_ms first_result_ms_fork first_result_ms_forkserver \
  first_result_ms_spawn array_roundtrip_64MiB_us array_roundtrip_1GiB_us \
  transform_1GiB_ms transform_1GiB_threads_ms; do
  pattern="^\{\"system\": \"procpool-$TRANSPORT\", \"metric\": \"$metric\", \"value\": [0-9.]+\}$"
  n="$(grep -cE "$pattern" <<<"$out" || true)"
  if [[ "$n" != 1 ]]; then
    echo "FAIL: metric $metric printed $n times (want 1)" >&2
    status=1
  fi
done
[[ "$status" == 0 ]] && echo "PASS: every metric printed"

# --latency_log: one "START_NS DURATION_NS" line per round trip (--quick: 100),
# and the histogram on stderr.
log="$(mktemp "${TEST_TMPDIR:-/tmp}/bench_latency.XXXXXX")"
trap 'rm -f "$errfile" "$log"' EXIT
"$BENCH" --quick --json --transport="$TRANSPORT" --only=roundtrip \
  --latency_log="$log" >/dev/null 2>"$errfile" || {
  echo "bench --latency_log failed:" >&2
  cat "$errfile" >&2
  exit 1
}
lines="$(grep -cE '^[0-9]+ [0-9]+$' "$log" || true)"
if [[ "$lines" != 100 || "$(wc -l <"$log")" != 100 ]]; then
  echo "FAIL: --latency_log wrote $(wc -l <"$log") lines, $lines well-formed (want 100)" >&2
  status=1
fi
if ! grep -q "roundtrip latency histogram" "$errfile"; then
  echo "FAIL: no latency histogram on stderr" >&2
  status=1
fi
[[ "$status" == 0 ]] && echo "PASS: the latency log and histogram"
exit "$status"
