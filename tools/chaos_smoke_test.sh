#!/usr/bin/env bash
# Smoke test of tools/chaos: about 5 s of waves under faults over one
# transport with --json; checks that it exits 0 (nothing hung, leaked or was
# left unresolved) and that the summary line has every field; that --faults=N
# stops a run soon after N faults fired; and a short --dense run over each of
# shm, unix and capnp (3 cycles through the 62 fault kinds, a few seconds
# each) that must hit every kind at least once with 0 failures. No timing is
# asserted. Cleans up: its stderr capture file (chaos removes its own).
#
# Usage (Bazel passes the binary): chaos_smoke_test.sh path/to/chaos [TRANSPORT]
set -euo pipefail

CHAOS="$1"
TRANSPORT="${2:-unix}"
errfile="$(mktemp "${TEST_TMPDIR:-/tmp}/chaos_smoke.XXXXXX")"
trap 'rm -f "$errfile"' EXIT

# The integer value of JSON field $1 in the line $2 (-1 if absent).
field() {
  grep -oE "\"$1\": [0-9]+" <<<"$2" | grep -oE '[0-9]+$' || echo -1
}

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
  unresolved leaked_processes leaked_fds detect_ms_p50 detect_ms_p99 \
  fault_kinds fault_kinds_hit; do
  if ! grep -qE "\"$field\": (-?[0-9.]+|null)[,}]" <<<"$out"; then
    echo "FAIL: field $field missing" >&2
    status=1
  fi
done
if ! grep -qE '"faults_by_kind": \{' <<<"$out"; then
  echo "FAIL: field faults_by_kind missing" >&2
  status=1
fi
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
# reports at least that many faults and stops soon after: a wave fires at
# most three (its armed fault in each of 2 workers, one outside signal).
rc=0
out2="$("$CHAOS" --transport="$TRANSPORT" --seconds=120 --faults=3 \
  --kill_probability=1 --json 2>"$errfile")" || rc=$?
echo "$out2"
if [[ "$rc" != 0 ]]; then
  echo "FAIL: chaos --faults=3 exited with $rc; its stderr:" >&2
  cat "$errfile" >&2
  status=1
fi
faults="$(field faults "$out2")"
if ((faults < 3 || faults > 5)); then
  echo "FAIL: --faults=3 stopped after $faults faults (want 3 to 5)" >&2
  status=1
fi
# --dense: 186 waves = 3 cycles through the 62 kinds, so that each kind has
# three waves to fire in (one may miss: a worker already gone at shutdown, a
# fault on a worker's 2nd call when the other worker took the calls).
for transport in shm unix capnp; do
  method=forkserver
  [[ "$transport" == unix ]] && method=all  # fork and spawn too
  rc=0
  out3="$("$CHAOS" --transport="$transport" --dense --waves=186 --seconds=240 \
    --start_method="$method" --json 2>"$errfile")" || rc=$?
  echo "$out3"
  if [[ "$rc" != 0 ]]; then
    echo "FAIL: chaos --dense over $transport exited with $rc; its stderr:" >&2
    grep -v 'corrupted frame' "$errfile" >&2 || true
    status=1
  fi
  for f in hung unresolved leaked_processes leaked_fds leaked_mappings \
    wrong_results tasks_failed_other spurious_broken; do
    if [[ "$(field "$f" "$out3")" != 0 ]]; then
      echo "FAIL: --dense over $transport: $f is not 0" >&2
      status=1
    fi
  done
  kinds="$(field fault_kinds "$out3")"
  hit="$(field fault_kinds_hit "$out3")"
  if ((kinds < 62 || hit != kinds)); then
    missed="$(grep -oE '"[a-z]+:[^"]+": 0[,}]' <<<"$out3" | tr '\n' ' ' || true)"
    echo "FAIL: --dense over $transport hit $hit of $kinds fault kinds" \
      "(never fired: $missed)" >&2
    status=1
  fi
done
[[ "$status" == 0 ]] && echo "PASS: chaos exited 0 with every field; --dense hit every kind"
exit "$status"
