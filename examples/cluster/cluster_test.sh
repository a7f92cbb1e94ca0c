#!/usr/bin/env bash
# cluster_test.sh: runs //examples/cluster:count_primes end to end.
#   1. under mpirun (-n 3: rank 0 and two worker ranks) on a small N: the count
#      is right and both worker ranks ran blocks;
#   2. the same binary without --procpool_cluster (local workers): same count;
#   3. under mpirun again, killing worker rank 2 (SIGKILL) once a tenth of the
#      blocks is back: with --on_worker_death=replace the count still comes
#      out right with one slot lost; by default the pool breaks and rank 0
#      says so and prints no count;
#   4. afterwards no process of the binary is left.
#
# Usage: cluster_test.sh PATH/TO/count_primes   (bazel test passes it)
#
# It runs a private copy of the binary (under $TEST_TMPDIR or a mktemp
# directory) so that pgrep on that path finds only the processes this test
# started. Cleans up: on any exit it SIGKILLs what still runs from the copy
# (mpirun's ranks and their workers) and the mpirun it started, then removes
# the copy. Every run is bounded by `timeout`.
set -euo pipefail

readonly RUN_LIMIT=120  # seconds for one mpirun or local run

[[ $# -eq 1 ]] || { echo "usage: cluster_test.sh COUNT_PRIMES_BINARY" >&2; exit 2; }
command -v mpirun >/dev/null || {
  echo "FAIL: mpirun not found (tools/setup.sh installs openmpi-bin)" >&2
  exit 1
}

work="$(mktemp -d "${TEST_TMPDIR:-/tmp}/cluster_test.XXXXXX")"
bin="$work/count_primes"
cp "$1" "$bin"
chmod +x "$bin"
launcher_pid=""

leftovers() { pgrep -f -- "^$bin( |$)" || true; }

cleanup() {
  local rc=$?
  if [[ -n "$launcher_pid" ]]; then
    kill -KILL "$launcher_pid" 2>/dev/null || true
  fi
  local pids
  pids="$(leftovers)"
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail=0
check() {  # check FILE REGEX WHAT
  if ! grep -qE -- "$2" "$1"; then
    echo "FAIL: $3 (no line matching '$2')" >&2
    fail=1
  fi
}
check_not() {  # check_not FILE REGEX WHAT
  if grep -qE -- "$2" "$1"; then
    echo "FAIL: $3 (a line matches '$2')" >&2
    fail=1
  fi
}

mpirun_line=(timeout "$RUN_LIMIT" mpirun --allow-run-as-root --oversubscribe
             --enable-recovery -n 3)

# 1. Under mpirun: pi(10^7) = 664579, counted by both worker ranks.
echo "=== mpirun -n 3 count_primes --procpool_cluster=mpi --n=10000000"
out="$work/mpirun.out"
"${mpirun_line[@]}" "$bin" --procpool_cluster=mpi --n=10000000 --blocks=50 \
    >"$out" 2>&1 || { cat "$out"; echo "FAIL: mpirun exited $?" >&2; exit 1; }
cat "$out"
check "$out" '^pi\(10000000\) = 664579 \(.*: right\)$' "mpirun: the count"
check "$out" '^blocks ran on 2 workers, .* the pool has 2 slots:$' \
    "mpirun: both worker ranks ran blocks"
check "$out" '^progress: 50/50 blocks' "mpirun: progress to the end"

# 2. Local workers, the same binary and count.
echo "=== count_primes --n=10000000 (local workers)"
out="$work/local.out"
timeout "$RUN_LIMIT" "$bin" --n=10000000 --blocks=50 --procpool_max_workers=2 \
    >"$out" 2>&1 || { cat "$out"; echo "FAIL: local run exited $?" >&2; exit 1; }
cat "$out"
check "$out" '^pi\(10000000\) = 664579 \(.*: right\)$' "local: the count"
check "$out" '^blocks ran on 2 workers, 1 host\(s\); the pool has 2 slots:$' \
    "local: two local workers"

# 3. A worker rank killed mid-run. Starts mpirun in the background, waits for
#    the first progress line, SIGKILLs rank 2 (the child of mpirun whose
#    OMPI_COMM_WORLD_RANK is 2; its worker dies with it), waits for the end.
kill_rank_2_midway() {  # kill_rank_2_midway OUT ARGS...
  local out="$1" mpirun_pid="" rank2="" p
  shift
  "${mpirun_line[@]}" "$bin" --procpool_cluster=mpi "$@" >"$out" 2>&1 &
  launcher_pid=$!
  for _ in $(seq 600); do  # 60 s
    grep -q '^progress: ' "$out" && break
    kill -0 "$launcher_pid" 2>/dev/null || break
    sleep 0.1
  done
  mpirun_pid="$(pgrep -P "$launcher_pid" -x mpirun || true)"
  [[ -n "$mpirun_pid" ]] || { cat "$out"; echo "FAIL: mpirun is gone" >&2; exit 1; }
  for p in $(pgrep -P "$mpirun_pid" || true); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null |
        grep -qx 'OMPI_COMM_WORLD_RANK=2'; then
      rank2="$p"
    fi
  done
  if [[ -z "$rank2" ]]; then
    cat "$out"
    echo "FAIL: no rank 2 among mpirun's children" >&2
    exit 1
  fi
  echo "killing rank 2 (pid $rank2) after: $(grep '^progress: ' "$out" | head -1)"
  kill -KILL "$rank2"
  # mpirun --enable-recovery returns 0 whatever the ranks did; timeout's 124
  # is the failure to look for.
  wait "$launcher_pid" || { cat "$out"; echo "FAIL: mpirun exited $?" >&2; exit 1; }
  launcher_pid=""
  cat "$out"
}

echo "=== mpirun -n 3 ... --on_worker_death=replace, rank 2 killed midway"
out="$work/replace.out"
kill_rank_2_midway "$out" --n=100000000 --on_worker_death=replace
check "$out" '^pi\(100000000\) = 5761455 \(.*: right\)$' \
    "replace: the count finishes on the rank left"
check "$out" 'the pool has 1 slots \(1 lost on the way\):$' \
    "replace: one slot lost"

echo "=== mpirun -n 3 ... (on_worker_death=break), rank 2 killed midway"
out="$work/break.out"
kill_rank_2_midway "$out" --n=100000000
check "$out" '^count_primes: the pool broke, no count: ' "break: says it broke"
check "$out" 'rank 2' "break: the crash report names the rank"
check_not "$out" '^pi\(' "break: no count printed"

# 4. Nothing left behind (bounded: rank processes exit once rank 0 is gone).
for _ in $(seq 100); do  # 10 s
  [[ -z "$(leftovers)" ]] && break
  sleep 0.1
done
if [[ -n "$(leftovers)" ]]; then
  echo "FAIL: processes of the binary left:" >&2
  ps -o pid,ppid,args -p "$(leftovers | paste -sd,)" >&2 || true
  fail=1
fi

if ((fail)); then exit 1; fi
echo "PASS"
