#!/usr/bin/env bash
# netns_hosts.sh: N "hosts" on this machine for multi-host mpirun tests, each a
# network namespace with one address on a private /24, joined by a bridge that
# lives in a hub namespace of its own (nothing is added to this machine's own
# namespace, so parallel runs never clash; every name carries the PID of the
# `up` that made it).
#
# Usage:
#   netns_hosts.sh up DIR N          make hosts 0..N-1 (N >= 2); DIR/ gets:
#       hostfile   one line per host: "ADDR slots=4"  (for mpirun --hostfile)
#       hosts      one line per host: "NAMESPACE ADDR TMPDIR" (rsh_netns.sh
#                  reads it)
#       tmp/h<i>/  host i's own TMPDIR (Open MPI's session directory and PMIx's
#                  rendezvous files live there: as on real hosts, none is shared)
#       env        shell assignments (source it): NETNS_DIR, NETNS_SUBNET,
#                  NETNS_NS_<i>, NETNS_ADDR_<i>, NETNS_TMP_<i>, NETNS_COUNT,
#                  NETNS_MPIRUN_ARGS
#                  (the mca flags mpirun needs, as words; see below)
#       rsh        mpirun's plm_rsh_agent: runs rsh_netns.sh with DIR/hosts
#       rsh.log    what the agent ran, on which host, and how it ended
#   netns_hosts.sh down DIR          remove everything `up` made in DIR (kills
#                                    what still runs in the namespaces);
#                                    harmless when already down
#   netns_hosts.sh exec DIR I CMD... run CMD on host I (its namespace, its
#                                    TMPDIR), in the foreground
#   netns_hosts.sh vanish DIR I      host I goes away as a machine would: its
#                                    link is deleted first (peers see no FIN,
#                                    no RST), then everything running in it is
#                                    SIGKILLed and its namespace deleted
#   netns_hosts.sh run N -- CMD...   up in a fresh temporary DIR, run CMD with
#                                    DIR/env exported, down (also on failure or
#                                    a signal); exits with CMD's status
#
# mpirun across the hosts: run it on host 0 (rank 0 then runs there too):
#   netns_hosts.sh exec DIR 0 mpirun --allow-run-as-root $NETNS_MPIRUN_ARGS \
#       --hostfile "$NETNS_DIR/hostfile" -n 3 --map-by node BINARY ...
# NETNS_MPIRUN_ARGS sets plm_rsh_agent to DIR/rsh (rsh_netns.sh, in for ssh: it
# runs orted under `ip netns exec` of the host named), plm_rsh_no_tree_spawn 1,
# and oob_tcp_if_include / btl_tcp_if_include to the subnet.
#
# Needs root and iproute2. Every command is bounded by `timeout`.
set -euo pipefail

readonly SUBNET_PREFIX="10.231.7"  # private to the hub: any fixed /24 will do
SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SELF_DIR

die() { echo "netns_hosts.sh: $*" >&2; exit 1; }

# What the EXIT trap removes: the DIR of an `up` that has not finished (so a
# failed `up` leaves nothing), or of `run` (always).
cleanup_dir=""
remove_dir_too=0
on_exit() {
  local rc=$?
  if [[ -n "$cleanup_dir" ]]; then
    cmd_down "$cleanup_dir"
    ((remove_dir_too)) && rm -rf "$cleanup_dir"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ipc() { timeout 20 ip "$@"; }  # every ip(8) call bounded

# Kills every process in namespace $1 and deletes it; harmless if absent.
remove_ns() {
  local ns="$1" pids
  if ! ipc netns list | awk '{print $1}' | grep -qxF -- "$ns"; then return 0; fi
  pids="$(ipc netns pids "$ns" 2>/dev/null || true)"
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    # Bounded wait for them to be gone (zombies of a live parent still count
    # as members of the namespace until reaped; do not wait for those long).
    for _ in $(seq 50); do
      [[ -z "$(ipc netns pids "$ns" 2>/dev/null || true)" ]] && break
      sleep 0.1
    done
  fi
  ipc netns delete "$ns" 2>/dev/null || true
}

cmd_down() {
  local dir="$1"
  [[ -f "$dir/names" ]] || return 0
  local ns
  # Hosts first, then the hub (deleting the hub deletes the bridge and every
  # hub-side veth end with it).
  while read -r ns; do remove_ns "$ns"; done < <(grep -v -- '-hub$' "$dir/names" || true)
  while read -r ns; do remove_ns "$ns"; done < <(grep -- '-hub$' "$dir/names" || true)
  rm -rf "$dir/tmp"
  rm -f "$dir/names"
}

cmd_up() {
  local dir="$1" n="$2"
  if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 2 || n > 200)); then
    die "N must be 2..200, got '$n'"
  fi
  [[ "$(id -u)" == 0 ]] || die "needs root"
  command -v ip >/dev/null || die "needs iproute2 (ip)"
  mkdir -p "$dir"
  [[ ! -f "$dir/names" ]] || die "$dir already holds hosts; run down first"
  local tag="pp$$" hub i ns addr
  hub="$tag-hub"
  : >"$dir/names"
  # From here on a failure (or a signal) removes whatever was made.
  cleanup_dir="$dir"
  echo "$hub" >>"$dir/names"
  ipc netns add "$hub"
  ipc -n "$hub" link add br0 type bridge
  ipc -n "$hub" link set br0 up
  : >"$dir/hosts"
  : >"$dir/hostfile"
  {
    echo "NETNS_DIR=$(printf %q "$(cd "$dir" && pwd)")"
    echo "NETNS_SUBNET=$SUBNET_PREFIX.0/24"
    echo "NETNS_COUNT=$n"
  } >"$dir/env"
  for ((i = 0; i < n; i++)); do
    ns="$tag-h$i"
    addr="$SUBNET_PREFIX.$((i + 1))"
    echo "$ns" >>"$dir/names"
    ipc netns add "$ns"
    # veth pair: "eth0" inside the host, "v<i>" on the hub's bridge. Made in
    # the host's namespace so that no name is ever visible in ours.
    ipc -n "$ns" link add eth0 type veth peer name "v$i" netns "$hub"
    ipc -n "$hub" link set "v$i" master br0
    ipc -n "$hub" link set "v$i" up
    ipc -n "$ns" addr add "$addr/24" dev eth0
    ipc -n "$ns" link set eth0 up
    ipc -n "$ns" link set lo up
    mkdir -p "$dir/tmp/h$i"
    echo "$ns $addr $(cd "$dir/tmp/h$i" && pwd)" >>"$dir/hosts"
    echo "$addr slots=4" >>"$dir/hostfile"
    {
      echo "NETNS_NS_$i=$ns"
      echo "NETNS_ADDR_$i=$addr"
      echo "NETNS_TMP_$i=$(printf %q "$(cd "$dir/tmp/h$i" && pwd)")"
    } >>"$dir/env"
  done
  # mpirun's agent: DIR/rsh runs rsh_netns.sh with this DIR's hosts file (so
  # that the mca value is one word).
  local abs
  abs="$(cd "$dir" && pwd)"
  [[ "$abs" != *[[:space:]]* ]] || die "DIR must not contain spaces: $abs"
  printf '#!/bin/sh\nexec %q --hosts %q --log %q "$@"\n' "$SELF_DIR/rsh_netns.sh" \
    "$abs/hosts" "$abs/rsh.log" >"$dir/rsh"
  chmod +x "$dir/rsh"
  local args="--mca plm_rsh_agent $abs/rsh --mca plm_rsh_no_tree_spawn 1"
  args+=" --mca oob_tcp_if_include $SUBNET_PREFIX.0/24"
  args+=" --mca btl_tcp_if_include $SUBNET_PREFIX.0/24"
  echo "NETNS_MPIRUN_ARGS=$(printf %q "$args")" >>"$dir/env"
  # Host 0 reaches every other host: a connect to a closed port there is
  # refused (an RST came back) rather than timing out.
  local out
  for ((i = 1; i < n; i++)); do
    out="$(timeout 10 ip netns exec "$tag-h0" bash -c \
      "exec 3<>/dev/tcp/$SUBNET_PREFIX.$((i + 1))/9" 2>&1 || true)"
    [[ "$out" == *"Connection refused"* ]] || die "host 0 cannot reach host $i: $out"
  done
  cleanup_dir=""
}

cmd_exec() {
  local dir="$1" i="$2" ns tmp
  shift 2
  read -r ns _ tmp < <(sed -n "$((i + 1))p" "$dir/hosts")
  [[ -n "${tmp:-}" ]] || die "no host $i in $dir/hosts"
  exec ip netns exec "$ns" env TMPDIR="$tmp" "$@"
}

cmd_vanish() {
  local dir="$1" i="$2" ns
  ns="$(sed -n "$((i + 1))p" "$dir/hosts" | awk '{print $1}')"
  [[ -n "$ns" ]] || die "no host $i in $dir/hosts"
  # The link first: once eth0 is gone nothing the killed processes' sockets
  # would send (FIN, RST) can reach the other hosts.
  ipc -n "$ns" link del eth0 2>/dev/null || true
  remove_ns "$ns"
}

cmd_run() {
  local n="$1" dir rc=0
  shift
  [[ "${1:-}" == "--" ]] && shift
  (($# > 0)) || die "run: no command"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/netns_hosts.XXXXXX")"
  cleanup_dir="$dir"
  remove_dir_too=1
  cmd_up "$dir" "$n"
  cleanup_dir="$dir"  # cmd_up cleared it; `run` always removes
  (
    set -a
    # shellcheck disable=SC1091
    source "$dir/env"
    set +a
    exec "$@"
  ) || rc=$?
  return "$rc"
}

case "${1:-}" in
  up) (($# == 3)) || die "usage: up DIR N"; cmd_up "$2" "$3" ;;
  down) (($# == 2)) || die "usage: down DIR"; cmd_down "$2" ;;
  vanish) (($# == 3)) || die "usage: vanish DIR I"; cmd_vanish "$2" "$3" ;;
  exec) (($# >= 4)) || die "usage: exec DIR I CMD..."; shift; cmd_exec "$@" ;;
  run) (($# >= 3)) || die "usage: run N -- CMD..."; shift; cmd_run "$@" ;;
  *) die "usage: netns_hosts.sh up DIR N | down DIR | exec DIR I CMD... | vanish DIR I | run N -- CMD..." ;;
esac
