#!/usr/bin/env bash
# mpirun_local_test.sh: procpool on a cluster under mpirun on this host
# (//cluster/testing:cluster_probe, 3 ranks: rank 0 and two worker ranks).
# Checks, one mpirun per case, each bounded by `timeout`:
#   ok                          WORKERS 2, RESULT ok sum=328350, DONE, rc 0
#   exit_code                   RESULT ok, DONE, and rank 0's status 7 said on
#                               stderr (mpirun --enable-recovery returns 0)
#   task_kills_worker break     BROKEN
#   task_kills_worker replace   WORKER_DIED, then RESULT ok
#   kill_rank replace           WORKER_DIED naming the rank, then RESULT ok
#   no --enable-recovery        refused fast, the message names the flag
# and after each run that no process of it is left (probe_lib.sh: leftovers).
# Needs Open MPI (tools/setup.sh). Cleans up its temp dir and any process of
# its own runs left behind.
#
# Usage: mpirun_local_test.sh PROBE
set -euo pipefail

[[ $# == 1 ]] || { echo "usage: mpirun_local_test.sh PROBE" >&2; exit 2; }
# Absolute but not resolved: see probe_lib.sh.
PROBE="$1"
[[ "$PROBE" == /* ]] || PROBE="$PWD/$PROBE"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# shellcheck source-path=SCRIPTDIR source=probe_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/probe_lib.sh"

command -v mpirun >/dev/null || { echo "FAIL: no mpirun (run tools/setup.sh)" >&2; exit 1; }
ROOT=()
[[ "$(id -u)" == 0 ]] && ROOT=(--allow-run-as-root)
MPIRUN=(mpirun "${ROOT[@]}" --oversubscribe --enable-recovery -x PROCPOOL_MPIRUN_TEST -n 3)
LIMIT=60  # one mpirun run, from the launch line to its end

probe() {  # probe NAME ARGS...: the probe under mpirun --enable-recovery
  local name="$1"
  shift
  run_mpirun "$name" "$LIMIT" "${MPIRUN[@]}" "$PROBE" --procpool_cluster=mpi "$@"
  leftovers "$name"
}

probe ok --scenario=ok
expect_line "$TMP/ok.out" '^WORKERS 2$' ok
expect_line "$TMP/ok.out" '^RESULT ok sum=328350$' ok
expect_line "$TMP/ok.out" '^DONE$' ok
((rc == 0)) || flunk "ok: mpirun returned $rc"

probe exit_code --scenario=exit_code
expect_line "$TMP/exit_code.out" '^RESULT ok sum=328350$' exit_code
expect_line "$TMP/exit_code.out" '^DONE$' exit_code
expect_line "$TMP/exit_code.err" '^procpool: rank 0 exited with status 7 ' exit_code
# (mpirun --enable-recovery returns 0 whatever rank 0's status: not asserted.)

probe task_kills_worker_break --scenario=task_kills_worker --policy=break
expect_line "$TMP/task_kills_worker_break.out" '^BROKEN ' task_kills_worker_break
expect_no_line "$TMP/task_kills_worker_break.out" '^(VALUE|OTHER|WORKER_DIED)' \
  task_kills_worker_break
expect_line "$TMP/task_kills_worker_break.out" '^DONE$' task_kills_worker_break

probe task_kills_worker_replace --scenario=task_kills_worker --policy=replace
f="$TMP/task_kills_worker_replace.out"
expect_line "$f" '^WORKER_DIED .*KillWorker' task_kills_worker_replace
expect_order "$f" '^WORKER_DIED ' '^RESULT ok sum=328350$' task_kills_worker_replace
expect_line "$f" '^DONE$' task_kills_worker_replace

probe kill_rank_replace --scenario=kill_rank --policy=replace
f="$TMP/kill_rank_replace.out"
expect_line "$f" '^WORKER_DIED .*rank [12]' kill_rank_replace
expect_order "$f" '^WORKER_DIED ' '^RESULT ok sum=328350$' kill_rank_replace
expect_line "$f" '^DONE$' kill_rank_replace

# Without --enable-recovery: refused before MPI_Init, every rank exits 2.
run_mpirun no_recovery 60 mpirun "${ROOT[@]}" --oversubscribe -x PROCPOOL_MPIRUN_TEST -n 3 \
  "$PROBE" --procpool_cluster=mpi --scenario=ok
leftovers no_recovery
expect_line "$TMP/no_recovery.err" 'procpool: .*--enable-recovery' no_recovery
expect_no_line "$TMP/no_recovery.out" '^(RESULT|WORKERS)' no_recovery
((rc != 0)) || flunk "no_recovery: mpirun returned 0"
awk -v s="$secs" 'BEGIN { exit !(s < 20) }' || flunk "no_recovery: took $secs s (not fast)"

if ((fail)); then exit 1; fi
echo PASS
