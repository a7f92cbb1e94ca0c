#!/usr/bin/env bash
# Smoke test of tools/chaos: about 5 s of waves under faults over one
# transport with --json; checks that it exits 0 (nothing hung, leaked or was
# left unresolved) and that the summary line has every field. No timing is
# asserted.
#
# Usage (Bazel passes the binary): chaos_smoke_test.sh path/to/chaos [TRANSPORT]
set -euo pipefail

CHAOS="$1"
TRANSPORT="${2:-unix}"
errfile="$(mktemp "${TEST_TMPDIR:-/tmp}/chaos_smoke.XXXXXX")"
trap 'rm -f "$errfile"' EXIT

rc=0
out="$("$CHAOS" --transport="$TRANSPORT" --seconds=5 --kill_probability=0.5 \
  --json 2>"$errfile")" || rc=$?
echo "$out"
if [[ "$rc" != 0 ]]; then
  echo "FAIL: chaos exited with $rc; its stderr:" >&2
  cat "$errfile" >&2
  exit 1
fi

status=0
if [[ "$(grep -c '^{.*}$' <<<"$out" || true)" != 1 ]]; then
  echo "FAIL: want exactly one JSON line on stdout" >&2
  status=1
fi
for field in waves faults tasks_submitted tasks_completed tasks_failed_broken hung \
  unresolved leaked_processes leaked_fds detect_ms_p50 detect_ms_p99; do
  if ! grep -qE "\"$field\": (-?[0-9.]+|null)[,}]" <<<"$out"; then
    echo "FAIL: field $field missing" >&2
    status=1
  fi
done
for field in hung unresolved leaked_processes leaked_fds; do
  if ! grep -qE "\"$field\": 0[,}]" <<<"$out"; then
    echo "FAIL: $field is not 0" >&2
    status=1
  fi
done
if ! grep -qE '"waves": [1-9][0-9]*[,}]' <<<"$out"; then
  echo "FAIL: no wave ran" >&2
  status=1
fi
# --faults: a run that stops by fault count (the --seconds bound far away)
# reports at least that many faults and stops soon after (a wave injects at
# most two: one armed, one signalled).
rc=0
out2="$("$CHAOS" --transport="$TRANSPORT" --seconds=120 --faults=3 \
  --kill_probability=1 --json 2>"$errfile")" || rc=$?
echo "$out2"
if [[ "$rc" != 0 ]]; then
  echo "FAIL: chaos --faults=3 exited with $rc; its stderr:" >&2
  cat "$errfile" >&2
  status=1
fi
faults="$(grep -oE '"faults": [0-9]+' <<<"$out2" | grep -oE '[0-9]+$' || echo -1)"
if ((faults < 3 || faults > 4)); then
  echo "FAIL: --faults=3 stopped after $faults faults (want 3 or 4)" >&2
  status=1
fi
[[ "$status" == 0 ]] && echo "PASS: chaos exited 0 with every field"
exit "$status"
