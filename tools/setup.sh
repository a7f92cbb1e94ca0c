#!/usr/bin/env bash
# Installs the Debian packages procpool builds with (see README.md and
# ../shared/TOOLCHAIN.md): Debian's Bazel 4.2.3, Abseil, Cap'n Proto, glog,
# GoogleTest/GoogleMock, pkg-config and g++; clang-14 and its libFuzzer and
# sanitizer runtimes (libclang-rt-14-dev) for tools/fuzz.sh; the cluster
# launchers and their peer for //cluster and its tests (TOOLCHAIN.md, "Clusters"):
# Open MPI, Slurm (slurmctld, slurmd, srun) with munge, mpi4py and numpy for the
# mpi4py.futures benchmark, iproute2 for the network-namespace hosts.
#
# Idempotent and quick: checks each package with `dpkg -s` and runs
# `apt-get update` + `apt-get install` only if something is missing. Runs
# apt-get directly as root, through sudo otherwise (if sudo is there).
#
# Usage: bash tools/setup.sh
set -euo pipefail

PACKAGES=(
  bazel-bootstrap
  libabsl-dev
  libcapnp-dev
  capnproto
  libgoogle-glog-dev
  libgtest-dev
  libgmock-dev
  pkg-config
  g++
  clang-14
  libclang-rt-14-dev
  # Clusters. mpirun, mpicc and ompi-c.pc:
  openmpi-bin
  libopenmpi-dev
  # srun --mpi=pmix: the plugin (mpi_pmix_v4.so, in slurm-wlm-basic-plugins,
  # which slurmd pulls in) dlopens the unversioned libpmix.so, which only
  # libpmix-dev ships (libopenmpi-dev depends on it today; named so it stays).
  libpmix-dev
  slurmctld
  slurmd
  slurm-client
  slurm-wlm-basic-plugins
  munge
  python3-mpi4py
  python3-numpy
  # ip netns, ss.
  iproute2
)

log() { echo "setup.sh: $*"; }
die() {
  echo "setup.sh: ERROR: $*" >&2
  exit 1
}

command -v dpkg >/dev/null 2>&1 ||
  die "dpkg not found: this script supports Debian (12) only; install the packages by hand: ${PACKAGES[*]}"

missing=()
for pkg in "${PACKAGES[@]}"; do
  # `dpkg -s` also succeeds for removed-but-configured packages; check Status.
  if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  log "all ${#PACKAGES[@]} Debian packages present (${PACKAGES[*]})"
else
  log "missing Debian packages: ${missing[*]}"
  if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
  elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
    log "not root: using sudo"
  else
    die "not root and sudo is not available; as root run: apt-get install -y ${missing[*]}"
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "running: apt-get update"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update ||
    die "apt-get update failed (no route to a Debian mirror?)"
  log "running: apt-get install -y --no-install-recommends ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"
  log "installed: ${missing[*]}"
fi

# Sanity checks: the tools the build calls.
command -v bazel >/dev/null 2>&1 ||
  die "bazel not on PATH although bazel-bootstrap is installed"
command -v pkg-config >/dev/null 2>&1 || die "pkg-config not on PATH"
pkg-config --exists absl_flags_parse capnp kj libglog gtest gmock ||
  die "pkg-config cannot find one of: absl_flags_parse capnp kj libglog gtest gmock"
# Cluster tools (cluster/testing/slurm/slurm_cluster.sh and the mpirun tests).
for tool in mpirun mpicc srun sinfo squeue scancel munged mungekey slurmctld slurmd ip ss; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not on PATH although its package is installed"
done
pkg-config --exists ompi-c || die "pkg-config cannot find ompi-c (libopenmpi-dev)"
pmix_plugin="$(dpkg -L slurm-wlm-basic-plugins | grep -m1 '/mpi_pmix\.so$' || true)"
[[ -n "$pmix_plugin" && -e "$pmix_plugin" ]] ||
  die "Slurm's PMIx plugin (mpi_pmix.so) is missing: srun --mpi=pmix cannot work"
libpmix="$(dpkg -L libpmix-dev | grep -m1 '/libpmix\.so$' || true)"
[[ -n "$libpmix" && -e "$libpmix" ]] ||
  die "libpmix.so (libpmix-dev) is missing: srun --mpi=pmix cannot load PMIx"
# Debian's modules are Debian's python3's: a python3 earlier on PATH (pyenv,
# a virtualenv) does not see them.
/usr/bin/python3 -c 'import mpi4py.futures, numpy' 2>/dev/null ||
  die "/usr/bin/python3 cannot import mpi4py.futures and numpy"
log "ok: $(mpirun --version 2>&1 | head -n1), slurm $(dpkg-query -W -f='${Version}' slurm-client), munge $(dpkg-query -W -f='${Version}' munge)"
log "ok: bazel-bootstrap $(dpkg-query -W -f='${Version}' bazel-bootstrap), $(g++ --version | head -n1)"
