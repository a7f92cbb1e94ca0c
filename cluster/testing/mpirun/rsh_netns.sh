#!/usr/bin/env bash
# rsh_netns.sh: stands in for ssh as mpirun's plm_rsh_agent when the "hosts"
# are network namespaces made by netns_hosts.sh. mpirun calls it as it would
# call ssh (`AGENT [OPTIONS] HOST COMMAND...`); it runs COMMAND through
# `sh -c` inside the namespace of HOST (an address or namespace name listed in
# the hosts file), in the foreground, like ssh.
#
# Usage (netns_hosts.sh puts this in NETNS_MPIRUN_ARGS):
#   mpirun --mca plm_rsh_agent 'rsh_netns.sh --hosts DIR/hosts' ...
#   rsh_netns.sh --hosts DIR/hosts [-x|-T|-n ...] HOST COMMAND...
# The hosts file has one line per host: "NAMESPACE ADDR".
# It starts nothing that outlives COMMAND and cleans up nothing.
set -euo pipefail

die() { echo "rsh_netns.sh: $*" >&2; exit 255; }  # 255: ssh's own failure code

hosts=""
if [[ "${1:-}" == "--hosts" ]]; then
  hosts="${2:-}"
  shift 2 || die "--hosts needs a file"
fi
[[ -n "$hosts" && -r "$hosts" ]] || die "no readable hosts file (--hosts FILE)"
# Options ssh would take (Open MPI passes none by default; accept flag-only
# ones such as -x, -T, -n).
while [[ "${1:-}" == -* ]]; do shift; done
(($# >= 2)) || die "usage: rsh_netns.sh --hosts FILE HOST COMMAND..."
host="$1"
shift
host="${host#*@}"  # user@host, as ssh accepts
ns="$(awk -v h="$host" '$1 == h || $2 == h {print $1; exit}' "$hosts")"
[[ -n "$ns" ]] || die "unknown host '$host' (not in $hosts)"
# ssh joins its arguments with spaces and hands them to the remote shell.
exec ip netns exec "$ns" /bin/sh -c "$*"
