#!/usr/bin/env bash
# mpirun_netns_test.sh: procpool on a cluster under mpirun across three hosts
# made of network namespaces (netns_hosts.sh; rsh_netns.sh in place of ssh):
# //cluster/testing:cluster_probe with rank i on host i, mpirun and rank 0 in
# host A. Cases, each bounded by `timeout`:
#   ok               WORKERS 2, RESULT ok sum=328350, DONE, rc 0
#   kill_rank        --policy=replace: WORKER_DIED naming the rank, RESULT ok
#   hold, replace    when the probe says RUNNING, host C vanishes (its link
#                    deleted, then everything in it SIGKILLed, its namespace
#                    deleted): WORKER_DIED naming C's address within 15 s,
#                    then RESULT ok from host B, DONE
#   hold, break      same, BROKEN naming C's address within 15 s, DONE
#   example          examples/cluster's count_primes end to end across the
#                    hosts: pi(10^7) = 664579, counted by both worker ranks
# After each: mpirun ends, and nothing of the run is left on the hosts. Open
# MPI 4.1.4 under --enable-recovery never ends by itself once a host's orted
# is gone (ranks 0 and 1 end normally; mpirun waits for rank 2's report
# forever): rank 0 leaves a watcher at exit that ends it 5 s later
# (cluster/mpirun_watch.h), so mpirun must be gone within 15 s of DONE; if
# not, the case fails and the test ends mpirun itself with two SIGINTs. Each
# case's times are printed ("time:" lines).
# Needs root and iproute2; skips (exit 0) only when not root. Removes the
# hosts, its temp dir and any process of its runs, also on failure.
#
# Usage: mpirun_netns_test.sh PROBE NETNS_HOSTS_SH EXAMPLE
set -euo pipefail

[[ $# == 3 ]] || { echo "usage: mpirun_netns_test.sh PROBE NETNS_HOSTS_SH EXAMPLE" >&2; exit 2; }
if [[ "$(id -u)" != 0 ]]; then
  echo "SKIP: mpirun_netns_test needs root (network namespaces); running as uid $(id -u)"
  exit 0
fi
# Absolute but not resolved: see probe_lib.sh.
PROBE="$1"
[[ "$PROBE" == /* ]] || PROBE="$PWD/$PROBE"
NETNS_HOSTS="$(readlink -f "$2")"
EXAMPLE="$(readlink -f "$3")"
TMP="$(mktemp -d)"
HOSTS="$TMP/hosts"
bg_pid=""
cleanup() {
  if [[ -n "$bg_pid" ]] && kill -0 "$bg_pid" 2>/dev/null; then
    kill -KILL "$bg_pid" 2>/dev/null || true
  fi
  "$NETNS_HOSTS" down "$HOSTS" || true
  rm -rf "$TMP"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=probe_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/probe_lib.sh"

command -v mpirun >/dev/null || { echo "FAIL: no mpirun (run tools/setup.sh)" >&2; exit 1; }
command -v ip >/dev/null || { echo "FAIL: no ip (iproute2; run tools/setup.sh)" >&2; exit 1; }

# hosts_up: (re)makes hosts A, B, C and the mpirun line that uses them.
hosts_up() {
  "$NETNS_HOSTS" down "$HOSTS"
  timeout 60 "$NETNS_HOSTS" up "$HOSTS" 3
  # shellcheck disable=SC1091
  source "$HOSTS/env"
  echo "hosts: A=$NETNS_ADDR_0 ($NETNS_NS_0) B=$NETNS_ADDR_1 C=$NETNS_ADDR_2"
  # shellcheck disable=SC2206
  MPIRUN=("$NETNS_HOSTS" exec "$HOSTS" 0 mpirun --allow-run-as-root --enable-recovery
    $NETNS_MPIRUN_ARGS --hostfile "$NETNS_DIR/hostfile" -n 3 --map-by node
    -x PROCPOOL_MPIRUN_TEST)
}
hosts_up
LIMIT=60  # one mpirun run, from the launch line to its end
HOLD=20  # --hold_seconds: the held tasks outlast the detection of a lost host

now() { date +%s.%N; }

# For dump_run (probe_lib.sh): the agent's log and each host's TCP connections.
dump_more() {
  local i ns
  echo "--- rsh.log (mpirun's agent)"
  cut -c1-200 "$NETNS_DIR/rsh.log" 2>/dev/null | tail -20 || true
  echo "--- TMPDIR=${TMPDIR:-} hostname=$(hostname)"
  for i in 0 1 2; do
    ns="NETNS_NS_$i"
    echo "--- host $i (${!ns}): TCP"
    ip netns exec "${!ns}" ss -tnp 2>/dev/null | cut -c1-160 || true
  done
}
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# wait_line FILE REGEX SECONDS: 0 once FILE has a line matching REGEX, 1 if
# none came within SECONDS.
wait_line() {
  local deadline
  deadline="$(awk -v s="$3" -v t="$(now)" 'BEGIN { printf "%.1f", t + s }')"
  while ! grep -qE -- "$2" "$1" 2>/dev/null; do
    awk -v d="$deadline" -v t="$(now)" 'BEGIN { exit !(t > d) }' && return 1
    sleep 0.1
  done
}

# The mpirun of the current run (in host A, the run's marker in its environ).
mpirun_pid() {
  local pid
  for pid in $(ip netns pids "$NETNS_NS_0" 2>/dev/null); do
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == mpirun ]] &&
      grep -qsxF --null-data -- "PROCPOOL_MPIRUN_TEST=$MARKER" "/proc/$pid/environ"; then
      echo "$pid"
    fi
  done
}

probe() {  # probe NAME ARGS...
  local name="$1"
  shift
  run_mpirun "$name" "$LIMIT" "${MPIRUN[@]}" "$PROBE" --procpool_cluster=mpi "$@"
  echo "time: $name: ${secs} s (launch line to mpirun's end)"
  leftovers "$name"
}

probe ok --scenario=ok
expect_line "$TMP/ok.out" '^WORKERS 2$' ok
expect_line "$TMP/ok.out" '^RESULT ok sum=328350$' ok
expect_line "$TMP/ok.out" '^DONE$' ok
((rc == 0)) || flunk "ok: mpirun returned $rc"

# examples/cluster end to end: both worker hosts count blocks.
run_mpirun example "$LIMIT" "${MPIRUN[@]}" "$EXAMPLE" --procpool_cluster=mpi \
  --n=10000000 --blocks=50
echo "time: example: ${secs} s (launch line to mpirun's end)"
expect_line "$TMP/example.out" '^pi\(10000000\) = 664579 \(.*: right\)$' example
expect_line "$TMP/example.out" '^blocks ran on 2 workers, .* the pool has 2 slots:$' example
((rc == 0)) || flunk "example: mpirun returned $rc"

probe kill_rank_replace --scenario=kill_rank --policy=replace
f="$TMP/kill_rank_replace.out"
expect_line "$f" "^WORKER_DIED .*($NETNS_ADDR_1|$NETNS_ADDR_2).*rank [12]" kill_rank_replace
expect_order "$f" '^WORKER_DIED ' '^RESULT ok sum=328350$' kill_rank_replace
expect_line "$f" '^DONE$' kill_rank_replace

# wait_gone PID SECONDS: 0 once PID has ended, 1 if it still runs after SECONDS.
wait_gone() {
  local t
  t="$(now)"
  while kill -0 "$1" 2>/dev/null; do
    awk -v s="$(since "$t")" -v l="$2" 'BEGIN { exit !(s > l) }' && return 1
    sleep 0.1
  done
}

# two_sigints: ends the current run's mpirun as a user would (Ctrl-C twice).
two_sigints() {
  local pid
  pid="$(mpirun_pid)"
  [[ -n "$pid" ]] || return 0
  kill -INT "$pid" 2>/dev/null || true
  sleep 0.5
  kill -INT "$pid" 2>/dev/null || true
}

# hold_case NAME POLICY VERDICT BOUND: host C vanishes under held tasks;
# VERDICT (WORKER_DIED or BROKEN) must come within BOUND seconds and name C's
# address.
hold_case() {
  local name="$1" policy="$2" verdict="$3" t0 t_gone t_done out err
  out="$TMP/$name.out"
  err="$TMP/$name.err"
  runs=$((runs + 1))
  MARKER="$$.$runs"
  echo "=== $name: ${MPIRUN[*]} $PROBE ... --scenario=hold --policy=$policy"
  t0="$(now)"
  PROCPOOL_MPIRUN_TEST="$MARKER" timeout -k 10 $((LIMIT + HOLD)) "${MPIRUN[@]}" "$PROBE" \
    --procpool_cluster=mpi --scenario=hold --policy="$policy" --hold_seconds="$HOLD" \
    >"$out" 2>"$err" &
  bg_pid=$!
  if wait_line "$out" '^RUNNING$' 60; then
    echo "time: $name: RUNNING $(since "$t0") s after the launch line"
    t_gone="$(now)"
    timeout 30 "$NETNS_HOSTS" vanish "$HOSTS" 2
    echo "time: $name: host C ($NETNS_ADDR_2) gone in $(since "$t_gone") s"
    if wait_line "$out" "^$verdict " $((HOLD + 30)); then
      echo "time: $name: $verdict $(since "$t_gone") s after host C went"
      awk -v s="$(since "$t_gone")" -v l="$4" 'BEGIN { exit !(s <= l) }' ||
        flunk "$name: $verdict came more than $4 s after host C went"
    else
      flunk "$name: no $verdict within $((HOLD + 30)) s of host C's going"
      dump_run "$name"
    fi
    if wait_line "$out" '^DONE$' 60; then
      t_done="$(now)"
      echo "time: $name: DONE $(since "$t_gone") s after host C went"
    else
      flunk "$name: no DONE within 60 s of host C's going"
      dump_run "$name"
    fi
  else
    flunk "$name: no RUNNING within 60 s"
    dump_run "$name"
  fi
  # mpirun: rank 0's watcher ends it within 15 s of DONE (see the header).
  if wait_gone "$bg_pid" 15; then
    echo "time: $name: mpirun ended by itself, $(since "${t_done:-$t0}") s after DONE"
  else
    flunk "$name: mpirun still there 15 s after DONE (rank 0's watcher did not end it); two SIGINTs"
    two_sigints
    if wait_gone "$bg_pid" 5; then
      echo "time: $name: mpirun ended $(since "${t_done:-$t0}") s after DONE, on two SIGINTs"
    else
      flunk "$name: mpirun still there 5 s after two SIGINTs; killing it"
      dump_run "$name"
      kill -KILL "$(mpirun_pid)" 2>/dev/null || true
    fi
  fi
  rc=0
  wait "$bg_pid" || rc=$?
  bg_pid=""
  echo "time: $name: $(since "$t0") s from the launch line to mpirun's end (rc $rc)"
  sed 's/^/  out| /' "$out"
  sed 's/^/  err| /' "$err" | head -40
  expect_line "$out" "^$verdict .*$NETNS_ADDR_2" "$name"
  expect_line "$out" '^DONE$' "$name"
  leftovers "$name"
  hosts_up  # host C back for the next case
}

# The probe prints the first failure as it happens (Wait kFirstException), so
# WORKER_DIED has the same bound as BROKEN (measured: 1.9 s for both).
hold_case hold_replace replace WORKER_DIED 15
expect_order "$TMP/hold_replace.out" '^WORKER_DIED ' '^RESULT ok sum=328350$' hold_replace
expect_no_line "$TMP/hold_replace.out" '^BROKEN ' hold_replace

hold_case hold_break break BROKEN 15

if ((fail)); then exit 1; fi
echo PASS
