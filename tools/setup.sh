#!/usr/bin/env bash
# Installs the Debian packages procpool builds with (see README.md and
# ../shared/TOOLCHAIN.md): Debian's Bazel 4.2.3, Abseil, Cap'n Proto, glog,
# GoogleTest/GoogleMock, pkg-config and g++; clang-14 and its libFuzzer and
# sanitizer runtimes (libclang-rt-14-dev) for tools/fuzz.sh.
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
log "ok: bazel-bootstrap $(dpkg-query -W -f='${Version}' bazel-bootstrap), $(g++ --version | head -n1)"
