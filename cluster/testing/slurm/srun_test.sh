#!/usr/bin/env bash
# srun_test.sh: procpool under Slurm's srun, end to end. Starts ONE throw-away
# one-node Slurm cluster (slurm_cluster.sh: munged, slurmctld, slurmd) and runs
# //cluster/testing:cluster_probe in it with `srun --mpi=pmix -n 3` (rank 0 runs
# the scenario, ranks 1 and 2 serve one worker slot each) for each scenario:
#
#   ok                          WORKERS 2, RESULT ok sum=328350, DONE; srun rc 0
#   exit_code                   RESULT ok; srun rc 7 (rank 0's exit code)
#   task_kills_worker break     BROKEN naming the host and the rank; rc 0
#   task_kills_worker replace   WORKER_DIED, then RESULT ok; rc 0
#   kill_rank replace           WORKER_DIED, then RESULT ok from the remaining
#                               rank; rc 137 (srun returns 128+9 when any task
#                               was SIGKILLed, whatever rank 0 returned)
#   kill_rank break             BROKEN naming the host and the rank; rc 137
#   slots_per_rank=0, srun --cpus-per-task=2
#                               WORKERS 4 (2 per worker rank)
#   slots_per_rank=3            WORKERS 6
#   refusal (--mpi=none, pmi2)  fails within 30 s, before MPI_Init, with a
#                               message that contains "--mpi=pmix"
#   example                     examples/cluster's count_primes end to end:
#                               pi(10^7) = 664579 counted by both worker ranks
#
# and, after each, that no process of the probe outlives srun (a worker left
# behind escapes Slurm's proctrack/linuxproc and would live on after the job).
# Asserts each expectation with a message that names the scenario. Every
# srun is bounded (timeout 120 s), the whole run too (540 s; Bazel's "large" is
# 900 s). Prints each scenario's output and time, and the cluster's start-up time.
#
# Usage (Bazel passes the paths): srun_test.sh PROBE SLURM_CLUSTER_SH EXAMPLE
# Clean-up: slurm_cluster.sh stops every daemon, task and step it started and
# removes its directory, also on failure or timeout.
#
# Skips (exit 0 with a message) only when not root. As root, missing Slurm or
# munge is a failure: tools/setup.sh installs them.
set -euo pipefail

if [[ "${1:-}" != --inside ]]; then
  if (($# != 3)); then
    echo "usage: $0 PROBE SLURM_CLUSTER_SH EXAMPLE" >&2
    exit 2
  fi
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "SKIP: not root (slurmd must run as root to start tasks); run as root to test srun"
    exit 0
  fi
  probe="$(realpath "$1")"
  cluster="$(realpath "$2")"
  example="$(realpath "$3")"
  self="$(realpath "$0")"
  [[ -x "$probe" ]] || { echo "FAIL: probe $probe is not executable" >&2; exit 1; }
  start=$SECONDS
  set +e
  # --foreground: stay in the test's process group, so that a signal Bazel sends
  # to the group (its own timeout) reaches slurm_cluster.sh, which cleans up.
  timeout --foreground -k 30 540 "$cluster" -- bash "$self" --inside "$probe" "$example"
  rc=$?
  set -e
  echo "srun_test: whole run (cluster start, scenarios, stop) took $((SECONDS - start)) s"
  case "$rc" in
    0) echo "PASS: every srun scenario" ;;
    124 | 137) echo "FAIL: the run took longer than 540 s (timeout)" >&2 ;;
    125) echo "FAIL: the Slurm cluster did not start (see slurm_cluster.sh's messages above)" >&2 ;;
    *) echo "FAIL: see the FAIL lines above (exit code $rc)" >&2 ;;
  esac
  exit "$rc"
fi

# --- Inside the cluster (SLURM_CONF points at it) ---------------------------
probe="$2"
example="$3"
probe_exe="$(readlink -f "$probe")"
host="$(hostname -s)"
work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/srun_test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
failures=0
times=()

fail() {
  echo "FAIL [$scenario]: $*" >&2
  failures=$((failures + 1))
}

# Waits (at most 20 s) until the cluster has no job left, so that each
# scenario starts on an empty node and its time is its own.
wait_queue_empty() {
  local i
  for ((i = 0; i < 80; i++)); do
    [[ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ]] && return 0
    sleep 0.25
  done
  echo "srun_test: jobs still queued after 20 s: $(timeout 5 squeue 2>&1)" >&2
}

# run_srun NAME SRUN_ARGS...: runs `srun SRUN_ARGS` (bounded), sets $scenario,
# $rc, $secs, $out (stdout) and $err (stderr), and prints them.
run_srun() {
  scenario="$1"
  shift
  wait_queue_empty
  local t0 t1
  t0="$(date +%s.%N)"
  set +e
  timeout -k 10 120 srun "$@" </dev/null >"$work/out" 2>"$work/err"
  rc=$?
  set -e
  t1="$(date +%s.%N)"
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
  out="$(cat "$work/out")"
  err="$(cat "$work/err")"
  echo "===== [$scenario] srun $* -> rc $rc in $secs s"
  echo "----- stdout"
  echo "$out"
  echo "----- stderr"
  echo "$err"
  times+=("$scenario: ${secs} s (rc $rc)")
  expect_no_leftovers
  if [[ "$rc" == 124 ]] || awk -v s="$secs" 'BEGIN { exit !(s >= 119) }'; then
    fail "srun did not finish within 120 s"
  fi
}

# expect_no_leftovers: no process of the probe started in this cluster (its
# executable, with this cluster's marker in its environment) outlives srun
# (waits up to 10 s). Slurm's proctrack/linuxproc loses a worker that its rank
# left behind (reparented to init): it would live on after the job. Kills any.
expect_no_leftovers() {
  local i pids
  for ((i = 0; i < 40; i++)); do
    pids="$(probe_pids)"
    [[ -z "$pids" ]] && return 0
    sleep 0.25
  done
  fail "processes of the probe outlived srun by 10 s: ${pids//$'\n'/ }"
  # shellcheck disable=SC2086
  kill -KILL $pids 2>/dev/null || true
}
probe_pids() {
  local exe pid
  find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$probe_exe" 2>/dev/null |
    while IFS= read -r exe; do
      pid="${exe#/proc/}"
      pid="${pid%/exe}"
      if grep -qzxF "SLURM_CLUSTER_MARKER=$SLURM_CLUSTER_DIR" "/proc/$pid/environ" 2>/dev/null; then
        echo "$pid"
      fi
    done
  return 0 # find complains of processes that vanished meanwhile
}

expect_rc() {
  [[ "$rc" == "$1" ]] || fail "srun returned $rc, want $1"
}
# expect_line REGEX: a line of the probe's stdout matches REGEX (grep -E).
expect_line() {
  grep -qE -- "$1" <<<"$out" || fail "no stdout line matches /$1/"
}
# expect_before REGEX1 REGEX2: the first line matching REGEX1 comes before the
# last line matching REGEX2.
expect_before() {
  local a b
  a="$(grep -nE -- "$1" <<<"$out" | head -n1 | cut -d: -f1 || true)"
  b="$(grep -nE -- "$2" <<<"$out" | tail -n1 | cut -d: -f1 || true)"
  if [[ -z "$a" || -z "$b" ]] || ((a >= b)); then
    fail "want a line /$1/ before a line /$2/"
  fi
}
# expect_names_failure: the BROKEN or WORKER_DIED line names this host and a rank.
expect_names_failure() {
  local line
  line="$(grep -E '^(BROKEN|WORKER_DIED) ' <<<"$out" | head -n1 || true)"
  [[ "$line" == *"$host"* ]] || fail "the crash report does not name the host $host: '$line'"
  grep -qiE 'rank[ =:]*[12]' <<<"$line" || fail "the crash report does not name rank 1 or 2: '$line'"
}

mpi=(--mpi=pmix -n 3 "$probe" --procpool_cluster=mpi)
result_ok='^RESULT ok sum=328350$'

run_srun ok "${mpi[@]}" --scenario=ok
expect_rc 0
expect_line '^WORKERS 2$'
expect_line "$result_ok"
expect_line '^DONE$'

run_srun exit_code "${mpi[@]}" --scenario=exit_code
expect_rc 7
expect_line "$result_ok"

run_srun "task_kills_worker break" "${mpi[@]}" --scenario=task_kills_worker --policy=break
expect_rc 0
expect_line '^BROKEN '
expect_names_failure
expect_line '^DONE$'

run_srun "task_kills_worker replace" "${mpi[@]}" --scenario=task_kills_worker --policy=replace
expect_rc 0
expect_line '^WORKER_DIED '
expect_names_failure
expect_before '^WORKER_DIED ' "$result_ok"
expect_line '^DONE$'

run_srun "kill_rank replace" "${mpi[@]}" --scenario=kill_rank --policy=replace
expect_rc 137
expect_line '^WORKER_DIED '
expect_names_failure
expect_before '^WORKER_DIED ' "$result_ok"
expect_line '^DONE$'
grep -qE 'task [12]: Killed' <<<"$err" || fail "srun did not report the killed task (task 1 or 2: Killed)"

run_srun "kill_rank break" "${mpi[@]}" --scenario=kill_rank --policy=break
expect_rc 137
expect_line '^BROKEN '
expect_names_failure
expect_line '^DONE$'

# Worker slots per rank: 0 takes srun's --cpus-per-task (SLURM_CPUS_PER_TASK;
# this cluster's task/none binds nothing, so the affinity mask would say the
# whole machine); N takes N.
run_srun "slots_per_rank=0 --cpus-per-task=2" --cpus-per-task=2 "${mpi[@]}" \
  --procpool_cluster_slots_per_rank=0 --scenario=ok
expect_rc 0
expect_line '^WORKERS 4$'
expect_line "$result_ok"

run_srun "slots_per_rank=3" "${mpi[@]}" --procpool_cluster_slots_per_rank=3 --scenario=ok
expect_rc 0
expect_line '^WORKERS 6$'
expect_line "$result_ok"

for plugin in none pmi2; do
  run_srun "refusal --mpi=$plugin" "--mpi=$plugin" -n 3 "$probe" --procpool_cluster=mpi --scenario=ok
  [[ "$rc" != 0 ]] || fail "srun --mpi=$plugin returned 0, want a failure"
  awk -v s="$secs" 'BEGIN { exit !(s < 30) }' || fail "took $secs s, want < 30 s"
  [[ "$out$err" == *--mpi=pmix* ]] || fail "no message contains \"--mpi=pmix\""
  [[ "$out$err" != *"error occurred in MPI_Init"* ]] ||
    fail "MPI_Init ran and failed: the launch line was not refused before it"
  [[ "$out" != *"RESULT"* ]] || fail "the probe ran its scenario"
done

run_srun example --mpi=pmix -n 3 "$example" --procpool_cluster=mpi --n=10000000 --blocks=50
expect_rc 0
expect_line '^pi\(10000000\) = 664579 \(.*: right\)$'
expect_line '^blocks ran on 2 workers, .* the pool has 2 slots:$'

echo "===== scenario times (srun, end to end):"
printf '  %s\n' "${times[@]}"
if ((failures > 0)); then
  echo "srun_test: $failures expectation(s) failed" >&2
  exit 1
fi
exit 0
