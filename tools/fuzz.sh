#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang and runs each for a bounded
# time: wire (procpool::wire::DecodeMessage), codec (DecodeValue<T> for the
# nested types of fuzz/codec_fuzz_types.h), handshake (the worker daemon's
# side of common/auth/handshake.h, played by an unauthenticated peer) and
# handle (shared_array/handle.h's DecodeHandle). See fuzz/README.md.
#
# Prints one line per target and, last, a summary line for tools/test.sh:
#
#   fuzz: wire PASSED: 1162765 execs in 60 s (19061/s), cov 1234, corpus 197 inputs (+187)
#   fuzz: codec FAILED: crash; reproducer /path/crash-...; rerun: /path/codec_fuzzer /path/crash-...
#   fuzz: 1 passed, 1 failed
#
# and exits 0 if every target ran its time without a crash, 1 if one crashed
# (a failed check, a sanitizer report, a leak, an input slower than 10 s or
# over 2 GB), 2 on a build or usage error.
#
# Why not Bazel: Bazel's autodetected C++ toolchain is chosen by CC when the
# output base is first used (gcc here); building with clang in the same output
# base would throw the gcc build away. Instead this compiles the few sources
# the targets need (serialization/'s byte_io.cc, codec_core.cc, codec_std.cc,
# capnp_frame.cc, wire.cc and the schema that `capnp compile` generates;
# common/auth/handshake.cc, hmac.cc and common/posix_error.cc)
# directly with clang++, linking Debian's Cap'n Proto and Abseil through
# pkg-config (and glog and libcrypto for the handshake), as the Bazel build does: offline, no
# second Bazel server, about a minute from scratch on 2 cores, and rebuilt
# only when a source or header changed. The same fuzz targets also build with
# Bazel's gcc as replay tests (//fuzz:wire_fuzzer_replay_test, ...), which run
# the seeds and saved reproducers under the normal and sanitizer configs.
#
# Compiled with -fsanitize=fuzzer-no-link,address,undefined (UB aborts).
# Outputs (objects, binaries, the growing corpus, crash artifacts) live in
# $PROCPOOL_FUZZ_DIR, by default ~/.cache/procpool_fuzz/<hash of this
# checkout's path>. The starting corpus is written by fuzz/write_seeds.cc on
# every run; fuzz/regressions/<target>/ holds saved reproducers, also used
# as seeds.
#
# Usage: bash tools/fuzz.sh [--seconds=N] [--build_only] [wire] [codec] [handshake] [handle]
#   --seconds=N   fuzzing time per target (default 30)
#   --build_only  build, write the seeds, and stop
# Needs clang++ (clang-14) and libFuzzer (libclang-rt-14-dev): tools/setup.sh.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
workspace="$PWD"

seconds=30
build_only=0
targets=()
for a in "$@"; do
  case "$a" in
    --seconds=*) seconds="${a#--seconds=}" ;;
    --build_only) build_only=1 ;;
    wire | codec | handshake | handle) targets+=("$a") ;;
    *)
      echo "usage: bash tools/fuzz.sh [--seconds=N] [--build_only] [wire] [codec] [handshake] [handle]" >&2
      exit 2
      ;;
  esac
done
if ((${#targets[@]} == 0)); then targets=(wire codec handshake handle); fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1)); then
  echo "fuzz.sh: --seconds wants a positive integer, not '$seconds'" >&2
  exit 2
fi

log() { echo "fuzz.sh: $*"; }
build_failed() {
  echo "fuzz.sh: BUILD FAILED: $*" >&2
  for t in "${targets[@]}"; do echo "fuzz: $t FAILED: build"; done
  echo "fuzz: 0 passed, ${#targets[@]} failed"
  exit 2
}

cxx="${PROCPOOL_FUZZ_CXX:-}"
if [[ -z "$cxx" ]]; then
  for c in clang++-14 clang++; do
    if command -v "$c" >/dev/null 2>&1; then
      cxx="$c"
      break
    fi
  done
fi
[[ -n "$cxx" ]] || build_failed "no clang++ on PATH (bash tools/setup.sh installs clang-14)"
command -v capnp >/dev/null 2>&1 || build_failed "no capnp on PATH (bash tools/setup.sh)"

out="${PROCPOOL_FUZZ_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/procpool_fuzz/$(printf %s "$workspace" | md5sum | cut -c1-12)}"
mkdir -p "$out/obj" "$out/gen/serialization" "$out/bin" || build_failed "cannot create $out"

san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
cxxflags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link
  "${san[@]}" -Wall -Wno-sign-compare -I"$workspace" -I"$out/gen")
libs=()
read -r -a libs <<<"$(pkg-config --libs capnp kj absl_status absl_statusor \
  absl_str_format absl_strings absl_synchronization absl_time absl_symbolize absl_hash absl_raw_hash_set libglog libcrypto)" || build_failed "pkg-config --libs capnp kj absl_... libglog libcrypto failed (bash tools/setup.sh)"

# The schema, as //serialization:wire_capnp_gen generates it.
schema=serialization/wire.capnp
gen="$out/gen/serialization/wire.capnp.c++"
if [[ ! -e "$gen" || "$schema" -nt "$gen" ]]; then
  capnp compile -I/usr/include --src-prefix=serialization \
    -oc++:"$out/gen/serialization" "$schema" || build_failed "capnp compile $schema"
fi

# Compiles a source to $out/obj/<name>.o unless the object is newer than the
# source, every header it included last time (clang's -MMD list) and the flags.
flags_id="$(printf '%s\n' "$cxx" "${cxxflags[@]}" | md5sum | cut -c1-12)"
stale() {
  local obj="$1" dep="$1.d"
  [[ -e "$obj" && -e "$dep" && "$(cat "$obj.flags" 2>/dev/null)" == "$flags_id" ]] || return 0
  local f
  for f in $(sed -e 's/^[^:]*://' -e 's/\\$//' "$dep"); do
    [[ -e "$f" && ! "$f" -nt "$obj" ]] || return 0
  done
  return 1
}
sources=(
  common/big_buffers.cc
  serialization/byte_io.cc
  serialization/codec_core.cc
  serialization/codec_std.cc
  serialization/capnp_frame.cc
  serialization/wire.cc
  serialization/wire_pieces.cc
  common/auth/handshake.cc
  common/auth/hmac.cc
  common/posix_error.cc
  "$gen"
  fuzz/codec_fuzzer.cc
  fuzz/wire_fuzzer.cc
  fuzz/handshake_fuzzer.cc
  shared_array/handle.cc
  shared_array/shared_region.cc
  shared_array/shared_buffer.cc
  shared_array/shared_array.cc
  shared_array/output_writes.cc
  common/sys.cc
  common/unique_fd.cc
  core/errors.cc
  core/crash_stack.cc
  fuzz/handle_fuzzer.cc
  fuzz/seeds.cc
  fuzz/write_seeds.cc
)
pids=()
names=()
for src in "${sources[@]}"; do
  name="$(basename "$src")"
  name="${name%.cc}"
  name="${name%.c++}"
  obj="$out/obj/$name.o"
  if stale "$obj"; then
    log "compiling $src"
    (
      "$cxx" "${cxxflags[@]}" -xc++ -MMD -MF "$obj.d" -c "$src" -o "$obj" \
        >"$obj.log" 2>&1 && echo "$flags_id" >"$obj.flags"
    ) &
    pids+=("$!")
    names+=("$src")
  fi
done
errors=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    name="$(basename "${names[$i]}")"
    name="${name%.cc}"
    name="${name%.c++}"
    cat "$out/obj/$name.o.log" >&2
    log "failed to compile ${names[$i]}"
    errors=$((errors + 1))
  fi
done
((errors == 0)) || build_failed "$errors source(s) did not compile"

link() {
  local bin="$out/bin/$1" kind="$2"
  shift 2
  local objs=()
  local o
  for o in "$@"; do objs+=("$out/obj/$o.o"); done
  local newest="${objs[0]}"
  for o in "${objs[@]}"; do [[ "$o" -nt "$newest" ]] && newest="$o"; done
  if [[ -e "$bin" && ! "$newest" -nt "$bin" ]]; then return 0; fi
  local sanitizers="${san[0]}"
  [[ "$kind" == fuzzer ]] && sanitizers="-fsanitize=fuzzer,${sanitizers#-fsanitize=}"
  "$cxx" "$sanitizers" "${objs[@]}" -o "$bin" "${libs[@]}" -lpthread ||
    build_failed "linking $bin (is libclang-rt-14-dev installed? bash tools/setup.sh)"
}
link wire_fuzzer fuzzer wire_fuzzer wire wire_pieces capnp_frame wire.capnp byte_io big_buffers
link codec_fuzzer fuzzer codec_fuzzer codec_core codec_std byte_io big_buffers
link handshake_fuzzer fuzzer handshake_fuzzer handshake hmac posix_error
link handle_fuzzer fuzzer handle_fuzzer handle output_writes shared_array \
  shared_buffer shared_region sys unique_fd errors crash_stack posix_error \
  byte_io big_buffers
link write_seeds plain write_seeds seeds codec_core codec_std byte_io wire wire_pieces capnp_frame wire.capnp big_buffers handle

for t in "${targets[@]}"; do
  rm -rf "$out/seeds/$t"
  mkdir -p "$out/seeds/$t" "$out/corpus/$t" "$out/artifacts/$t"
  "$out/bin/write_seeds" "$t" "$out/seeds/$t" || build_failed "write_seeds $t"
done
log "built in $out (clang: $("$cxx" --version | head -n1))"
if ((build_only)); then exit 0; fi

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
passed=0
failed=0
for t in "${targets[@]}"; do
  bin="$out/bin/${t}_fuzzer"
  runlog="$out/$t.log"
  corpus_dirs=("$out/corpus/$t" "$out/seeds/$t")
  [[ -d "fuzz/regressions/$t" ]] && corpus_dirs+=("fuzz/regressions/$t")
  log "fuzzing $t for ${seconds} s (log: $runlog)"
  start=$SECONDS
  # The outer timeout only guards against libFuzzer itself hanging.
  timeout --signal=KILL $((seconds + 120)) "$bin" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" "${corpus_dirs[@]}" >"$runlog" 2>&1
  rc=$?
  elapsed=$((SECONDS - start))
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$runlog" | tail -n1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$runlog" | tail -n1)"
  added="$(sed -n 's/^stat::new_units_added: *//p' "$runlog" | tail -n1)"
  cov="$(grep -oE ' cov: [0-9]+' "$runlog" | tail -n1 | awk '{print $2}')"
  corpus_size="$(find "$out/corpus/$t" -type f | wc -l)"
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "fuzz: $t PASSED: ${execs:-?} execs in ${elapsed} s (${rate:-?}/s), cov ${cov:-?}, corpus ${corpus_size} inputs (+${added:-?})"
  else
    failed=$((failed + 1))
    artifact="$(sed -n 's/.*Test unit written to //p' "$runlog" | tail -n1)"
    echo "---- $t: last lines of $runlog ----"
    grep -vE '^#[0-9]+' "$runlog" | tail -n 60
    echo "----"
    if [[ -n "$artifact" ]]; then
      echo "fuzz: $t FAILED: exit $rc after ${execs:-?} execs; reproducer $artifact; rerun: $bin $artifact"
    else
      echo "fuzz: $t FAILED: exit $rc after ${elapsed} s, no reproducer written (see $runlog)"
    fi
  fi
done

echo "fuzz: ${passed} passed, ${failed} failed"
((failed == 0))
