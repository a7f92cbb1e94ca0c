#!/usr/bin/env bash
# slurm_cluster.sh: starts a throw-away one-node Slurm cluster (munged,
# slurmctld, slurmd from Debian's packages), runs one command against it, and
# takes it all down again.
#
# Usage:
#   slurm_cluster.sh [--cpus=N] [--task_plugin=task/none] [--start_timeout=SECONDS] [--keep] \
#     -- COMMAND [ARGS...]
# e.g.
#   slurm_cluster.sh -- srun --mpi=pmix -n 3 ./binary --procpool_cluster=mpi
#
# What it does, all inside a fresh `mktemp -d` directory ($SLURM_CLUSTER_DIR):
#   1. a munge key and a munged with its own socket, pid, log and seed files;
#   2. a slurm.conf (see ../../../../shared/TOOLCHAIN.md, "Clusters") with
#      SlurmctldHost = `hostname`, every state/spool/log/pid path in the
#      directory, and SlurmctldPort/SlurmdPort picked free (below the kernel's
#      ephemeral range, so they clash neither with a system Slurm on 6817/6818
#      nor with outgoing connections);
#   3. slurmctld and slurmd in the foreground of their own background jobs;
#   4. waits (at most --start_timeout, default 60 s) until the node is idle;
#   5. runs COMMAND with SLURM_CONF pointing at the cluster (srun, sinfo,
#      squeue... then talk to it; munge's socket is named in the conf's
#      AuthInfo) and every other inherited SLURM_* variable removed. COMMAND's
#      stdin, stdout and stderr are the caller's.
#
# Exit status: COMMAND's; 125 when the cluster could not be started (then the
# tails of the daemons' logs go to stderr); 128+N when killed by signal N.
#
# Clean-up (trap on EXIT, INT, TERM, HUP; also after a failed start): cancels
# the cluster's jobs, stops slurmd, slurmctld and munged (SIGTERM, then SIGKILL
# after 5 s), SIGKILLs whatever is left that carries this cluster's marker in
# its environment (slurmstepd and the tasks it started; they are not children
# of this script), and removes the directory (unless --keep, for debugging).
#
# Needs root (slurmd starts tasks as their users), munge, slurmctld, slurmd,
# slurm-client and slurm-wlm-basic-plugins (tools/setup.sh installs them).
#
# Node CPUs: --cpus (default: the larger of `nproc` and 8). slurm.conf sets
# SlurmdParameters=config_overrides, so Slurm believes the configured count on
# a smaller machine (`srun -n 3` on 2 cores would otherwise be refused).
# TaskPlugin (--task_plugin, default task/none) binds nothing: every task sees the
# whole machine. task/affinity binds each task to its CPUs (needs --cpus at most
# the real count).
# shellcheck disable=SC2317  # cleanup and what it calls run from a trap
set -euo pipefail

prog="slurm_cluster.sh"
log() { echo "$prog: $*" >&2; }
die_start() {
  log "ERROR: $*"
  show_logs
  exit 125
}

cpus=""
task_plugin="task/none"
start_timeout=60
keep=0
while (($# > 0)); do
  case "$1" in
    --cpus=*) cpus="${1#--cpus=}" ;;
    --task_plugin=*) task_plugin="${1#--task_plugin=}" ;;
    --start_timeout=*) start_timeout="${1#--start_timeout=}" ;;
    --keep) keep=1 ;;
    --) shift; break ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) log "unknown option: $1 (see $prog --help)"; exit 2 ;;
  esac
  shift
done
if (($# == 0)); then
  log "no command given (usage: $prog [options] -- COMMAND [ARGS...])"
  exit 2
fi

# Bazel's test PATH lacks the sbin directories, where munged and the Slurm
# daemons live.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH="$PATH:/usr/sbin" ;; esac
case ":$PATH:" in *:/sbin:*) ;; *) PATH="$PATH:/sbin" ;; esac
export PATH

[[ "$(id -u)" -eq 0 ]] || { log "ERROR: must run as root (slurmd runs tasks as their users)"; exit 125; }
for tool in munged mungekey slurmctld slurmd srun sinfo squeue scancel ss; do
  command -v "$tool" >/dev/null 2>&1 ||
    { log "ERROR: $tool not on PATH (run tools/setup.sh)"; exit 125; }
done

if [[ -z "$cpus" ]]; then
  cpus="$(nproc)"
  ((cpus >= 8)) || cpus=8
fi

# Always under /tmp, not $TMPDIR: Bazel's is too long for the Unix sockets of
# munge and of Slurm's PMIx server (108 bytes at most).
dir="$(mktemp -d /tmp/slurm_cluster.XXXXXX)"
chmod 0755 "$dir" # slurmstepd and tasks of other users may need to reach it
marker="SLURM_CLUSTER_MARKER=$dir"
host="$(hostname -s)"
munged_pid=""
slurmctld_pid=""
slurmd_pid=""
cmd_pid=""

show_logs() {
  local f
  for f in "$dir"/log/*.log; do
    [[ -s "$f" ]] || continue
    echo "----- $prog: last lines of ${f##*/} -----" >&2
    tail -n 25 "$f" >&2 || true
  done
}

# Stops one daemon by pid: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
  local pid="$1" i
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# Pids of this cluster's processes that are not our children: those whose
# environment holds this cluster's marker (the tasks: slurmstepd starts them
# with srun's environment; srun; COMMAND's leftovers) and those with a file
# open under the cluster's directory (slurmstepd, which clears its environment
# but keeps slurmd's log open). This shell, its subshell and munged excepted.
marked_pids() {
  {
    grep -lzxF "$marker" /proc/[0-9]*/environ 2>/dev/null || true
    find /proc/[0-9]*/fd -maxdepth 1 -lname "$dir/*" 2>/dev/null || true
  } | cut -d/ -f3 | sort -u |
    grep -vxF -e "$$" -e "$BASHPID" -e "${munged_pid:-none}" || true
}

cleanup() {
  local rc=$? pids i
  # Ignore further signals while cleaning up: a process group's SIGTERM (Bazel's
  # timeout) also reaches us through `timeout`, which forwards it once more.
  trap - EXIT
  trap '' INT TERM HUP
  set +e
  if [[ -n "$cmd_pid" ]] && kill -0 "$cmd_pid" 2>/dev/null; then
    kill -TERM "$cmd_pid" 2>/dev/null
    sleep 1
    kill -KILL "$cmd_pid" 2>/dev/null
    wait "$cmd_pid" 2>/dev/null
  fi
  if [[ -n "$slurmctld_pid" ]] && kill -0 "$slurmctld_pid" 2>/dev/null; then
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --quiet --full --signal=KILL \
      --partition=procpool >/dev/null 2>&1
    SLURM_CONF="$dir/slurm.conf" timeout 10 scancel --quiet --partition=procpool >/dev/null 2>&1
    for ((i = 0; i < 20; i++)); do
      [[ -z "$(SLURM_CONF="$dir/slurm.conf" timeout 5 squeue -h -o %i 2>/dev/null)" ]] && break
      sleep 0.25
    done
  fi
  stop_pid "$slurmd_pid"
  stop_pid "$slurmctld_pid"
  pids="$(marked_pids)"
  if [[ -n "$pids" ]]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    sleep 0.2
  fi
  stop_pid "$munged_pid"
  if ((keep)); then
    log "kept $dir"
  else
    rm -rf "$dir"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Prints a TCP port in [10000, 32767] that no socket uses now.
used_ports=" "
pick_port() {
  local port i
  for ((i = 0; i < 200; i++)); do
    port=$((10000 + RANDOM % 22768))
    [[ "$used_ports" == *" $port "* ]] && continue
    if ! ss -Htan "( sport = :$port or dport = :$port )" | grep -q .; then
      used_ports+="$port "
      echo "$port"
      return 0
    fi
  done
  die_start "no free TCP port found"
}

# Waits up to $1 seconds for the command $2... to succeed.
wait_for() {
  local seconds="$1" deadline
  shift
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

mkdir -p "$dir"/{munge,log,state,spool,tmp}
chmod 0700 "$dir/munge"
export SLURM_CLUSTER_MARKER="$dir"
start_time=$SECONDS

# 1. munge.
mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null 2>&1 ||
  die_start "mungekey could not create a key"
chmod 0600 "$dir/munge/munge.key"
munge_socket="$dir/munge/munge.socket"
munged --foreground --force --socket="$munge_socket" --key-file="$dir/munge/munge.key" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" \
  --seed-file="$dir/munge/munged.seed" --num-threads=2 </dev/null >>"$dir/log/munged.log" 2>&1 &
munged_pid=$!
wait_for 10 test -S "$munge_socket" || die_start "munged did not open $munge_socket within 10 s"

# 2. slurm.conf.
ctld_port="$(pick_port)"
slurmd_port="$(pick_port)"
# PlugStackConfig names an empty file so that the host's /etc/slurm/plugstack.conf
# (SPANK plugins) stays out.
: >"$dir/plugstack.conf"
cat >"$dir/slurm.conf" <<EOF
# One-node test cluster made by $prog; everything lives in $dir.
ClusterName=procpool
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$munge_socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=$task_plugin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdParameters=config_overrides
ReturnToService=2
InactiveLimit=0
KillWait=2
MinJobAge=2
MessageTimeout=10
SlurmctldDebug=info
SlurmdDebug=info
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=procpool Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"

# 3. The daemons. -i: ignore state a previous slurmctld saved (there is none).
slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
slurmctld_pid=$!
slurmd -D -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
slurmd_pid=$!

# 4. Wait for the node to be idle.
node_idle() {
  kill -0 "$slurmctld_pid" && kill -0 "$slurmd_pid" &&
    [[ "$(timeout 5 sinfo -h -n "$host" -o %T 2>/dev/null)" == idle ]]
}
if ! wait_for "$start_timeout" node_idle; then
  kill -0 "$slurmctld_pid" 2>/dev/null || die_start "slurmctld exited: $(tail -n 5 "$dir/log/slurmctld.out" 2>/dev/null)"
  kill -0 "$slurmd_pid" 2>/dev/null || die_start "slurmd exited: $(tail -n 5 "$dir/log/slurmd.out" 2>/dev/null)"
  die_start "node $host not idle within ${start_timeout} s (sinfo: $(timeout 5 sinfo -h -N -o '%N %T %E' 2>&1))"
fi
log "cluster up in $((SECONDS - start_time)) s: node $host, $cpus CPUs, ports $ctld_port/$slurmd_port, dir $dir"

# 5. The command, with no inherited job or step variables (they would make srun
# join a job that this cluster does not know).
while IFS= read -r name; do
  [[ "$name" == SLURM_CONF || "$name" == SLURM_CLUSTER_* ]] || unset "$name"
done < <(compgen -e | grep -E '^(SLURM|SRUN|SALLOC|SBATCH)_' || true)
export SLURM_CLUSTER_DIR="$dir"
# In the background, so that a signal to this script runs the trap at once.
# `<&0`: keep the caller's stdin (a background job's would be /dev/null).
"$@" <&0 &
cmd_pid=$!
set +e
wait "$cmd_pid"
rc=$?
set -e
cmd_pid=""
exit "$rc"
