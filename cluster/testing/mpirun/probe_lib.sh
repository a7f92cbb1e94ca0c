# shellcheck shell=bash disable=SC2034  # fail: read by the test that sources this
# probe_lib.sh: shared by mpirun_local_test.sh and mpirun_netns_test.sh (source
# it; not run on its own). Runs //cluster/testing:cluster_probe under mpirun
# and checks what it printed.
#
# The caller sets:
#   PROBE    absolute path of the probe as this test's runfiles name it (not
#            resolved: other tests run the same binary through their own
#            runfiles, and must not count as ours)
#   TMP      a scratch directory the caller removes
# Each run gets a marker (PROCPOOL_MPIRUN_TEST=<pid>.<n>) in its environment,
# passed to every rank with `mpirun -x`, so that the processes of the run can
# be found afterwards (leftovers) without touching anyone else's.
# It starts nothing itself but what run_mpirun starts, and kills only the
# processes leftovers finds for this test's own marker.

fail=0
runs=0

# FAIL message; the test goes on and exits 1 at the end.
flunk() {
  echo "FAIL: $*" >&2
  fail=1
}

# expect_line FILE REGEX WHAT: FILE has a line matching REGEX (grep -E).
expect_line() {
  if ! grep -qE -- "$2" "$1"; then
    flunk "$3: no line matching /$2/ in $(basename "$1")"
  fi
}

# expect_no_line FILE REGEX WHAT
expect_no_line() {
  if grep -qE -- "$2" "$1"; then
    flunk "$3: unexpected line matching /$2/: $(grep -E -- "$2" "$1" | head -1)"
  fi
}

# expect_order FILE REGEX1 REGEX2 WHAT: the first line matching REGEX1 comes
# before the last line matching REGEX2.
expect_order() {
  local a b
  a="$(grep -nE -- "$2" "$1" | head -1 | cut -d: -f1 || true)"
  b="$(grep -nE -- "$3" "$1" | tail -1 | cut -d: -f1 || true)"
  if [[ -z "$a" || -z "$b" ]] || ((a >= b)); then
    flunk "$4: expected /$2/ before /$3/"
  fi
}

# Prints the pids of processes of the current run: those with its marker in
# their environment, and those with the probe's path in their command line
# and no marker of another run (the same test run twice at once, as with
# --runs_per_test, shares the path; never count or kill the other's).
run_processes() {
  local f pid
  # One grep over every environ; processes that vanish meanwhile are skipped.
  grep -lsxF --null-data -- "PROCPOOL_MPIRUN_TEST=$MARKER" /proc/[0-9]*/environ 2>/dev/null |
    while IFS= read -r f; do
      pid="${f#/proc/}"
      echo "${pid%%/*}"
    done
  for pid in $(pgrep -f -- "$PROBE" || true); do
    f="/proc/$pid/environ"
    [[ -r "$f" ]] || continue
    if grep -qsF --null-data -- "PROCPOOL_MPIRUN_TEST=" "$f" &&
      ! grep -qsxF --null-data -- "PROCPOOL_MPIRUN_TEST=$MARKER" "$f"; then
      continue  # another run's
    fi
    echo "$pid"
  done
}

# leftovers WHAT: after a run, no process of it may remain (waits up to 5 s
# for processes that are exiting); kills any that do and fails.
leftovers() {
  local pids=""
  for _ in $(seq 25); do
    pids="$(run_processes | sort -u | grep -vxF -- "$$" || true)"
    [[ -z "$pids" ]] && return 0
    sleep 0.2
  done
  flunk "$1: processes of the run left behind:"
  ps -o pid,ppid,stat,etimes,args -p "${pids//$'\n'/,}" >&2 || true
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}

# dump_run WHY: shows the current run's processes (state, wait channel, the
# network namespace) and calls the caller's dump_more, if it defines one.
dump_run() {
  local pids
  echo "--- $1: the run's processes:" >&2
  pids="$(run_processes | sort -un | grep -vxF -- "$$" || true)"
  if [[ -n "$pids" ]]; then
    ps -o pid,ppid,stat,wchan:24,etimes,args -p "${pids//$'\n'/,}" 2>/dev/null |
      cut -c1-220 >&2 || true
  fi
  if declare -F dump_more >/dev/null; then dump_more >&2 || true; fi
}

# run_mpirun NAME LIMIT CMD...: runs CMD (an mpirun line; a wrapper such as
# `ip netns exec NS` may come first) with the run's marker exported, under
# `timeout -k 10 LIMIT` (its processes are shown 3 s before, if it still
# runs); stdout to $TMP/NAME.out, stderr to $TMP/NAME.err, both shown after.
# Sets rc (CMD's status) and secs (its wall time).
run_mpirun() {
  local name="$1" limit="$2" t0 t1 pid start="$SECONDS"
  shift 2
  runs=$((runs + 1))
  MARKER="$$.$runs"
  echo "=== $name: $*"
  t0="$(date +%s.%N)"
  PROCPOOL_MPIRUN_TEST="$MARKER" timeout -k 10 "$limit" "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null && ((SECONDS - start < limit - 3)); do
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then dump_run "$name: still running after $((limit - 3)) s"; fi
  rc=0
  wait "$pid" || rc=$?
  t1="$(date +%s.%N)"
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
  sed 's/^/  out| /' "$TMP/$name.out"
  sed 's/^/  err| /' "$TMP/$name.err" | head -40
  echo "--- $name: rc=$rc, ${secs} s"
  if ((rc == 124 || rc == 137)); then
    flunk "$name: did not end within $limit s"
  fi
}
