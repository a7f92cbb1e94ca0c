#!/usr/bin/env bash
# rsh_netns.sh: stands in for ssh as mpirun's plm_rsh_agent when the "hosts"
# are network namespaces made by netns_hosts.sh. mpirun calls it as it would
# call ssh (`AGENT [OPTIONS] HOST COMMAND...`); it runs COMMAND through
# `sh -c` inside the namespace of HOST (an address or namespace name listed in
# the hosts file), in the foreground, like ssh, and exits with its status.
#
# Usage (netns_hosts.sh writes DIR/rsh, which calls this, and puts it in
# NETNS_MPIRUN_ARGS):
#   mpirun --mca plm_rsh_agent DIR/rsh ...
#   rsh_netns.sh --hosts DIR/hosts [--log FILE] [-x|-T|-n ...] HOST COMMAND...
# The hosts file has one line per host: "NAMESPACE ADDR TMPDIR"; COMMAND runs
# with that TMPDIR (each host's own /tmp, for Open MPI's session directory).
# With --log, one
# line per call (host, command) and one when it ends (status) are appended to
# FILE, and COMMAND's stderr is copied there too.
# It starts nothing that outlives COMMAND and cleans up nothing.
set -euo pipefail

die() {  # 255: ssh's own failure code
  echo "rsh_netns.sh: $*" >&2
  [[ -z "${log:-}" ]] || echo "rsh_netns.sh[$$]: $*" >>"$log"
  exit 255
}

hosts=""
log=""
while [[ "${1:-}" == --hosts || "${1:-}" == --log ]]; do
  (($# >= 2)) || die "$1 needs a file"
  if [[ "$1" == --hosts ]]; then hosts="$2"; else log="$2"; fi
  shift 2
done
[[ -n "$hosts" && -r "$hosts" ]] || die "no readable hosts file (--hosts FILE)"
# Options ssh would take (Open MPI passes none by default; accept flag-only
# ones such as -x, -T, -n).
while [[ "${1:-}" == -* ]]; do shift; done
(($# >= 2)) || die "usage: rsh_netns.sh --hosts FILE [--log FILE] HOST COMMAND..."
host="$1"
shift
host="${host#*@}"  # user@host, as ssh accepts
read -r ns tmp < <(awk -v h="$host" '$1 == h || $2 == h {print $1, $3; exit}' "$hosts") || true
[[ -n "${ns:-}" && -n "${tmp:-}" ]] || die "unknown host '$host' (not in $hosts)"
# ssh joins its arguments with spaces and hands them to the remote shell.
if [[ -z "$log" ]]; then
  exec ip netns exec "$ns" env TMPDIR="$tmp" /bin/sh -c "$*"
fi
echo "rsh_netns.sh[$$]: $host ($ns): $*" >>"$log"
rc=0
ip netns exec "$ns" env TMPDIR="$tmp" /bin/sh -c "$*" 2> >(tee -a "$log" >&2) || rc=$?
echo "rsh_netns.sh[$$]: $host: exit $rc" >>"$log"
exit "$rc"
