#!/usr/bin/env bash
# Builds and runs every test (`bazel test //...`), then the consumer
# workspace (examples/consumer/test_consumer.sh: a separate Bazel workspace
# that takes procpool in as @procpool, built once and run once per transport),
# then prints one plain summary line for CI as the very last line of output:
#
#   N passed, M failed
#
# followed on the same line, when an environment variable below left steps
# out, by which and why, e.g.
#
#   N passed, M failed; skipped: ASan and TSan (PROCPOOL_SKIP_SANITIZERS=1)
#
# counted from Bazel's per-target summary: PASSED and FLAKY count as passed;
# FAILED, TIMEOUT, NO STATUS, INCOMPLETE and the like as failed, and so does
# every test that did not load, analyze or build (listed by name); each
# consumer run is one more test (its failed build, one failed test). Exits with
# bazel's exit code (0: all passed, 3: some test failed, 1: build failed, ...);
# if that is 0, with the consumer's (0, 3 for a failed run, 1 for a failed
# build).
#
# A test whose log holds a sanitizer report (from a worker process, say, whose
# report does not change the test's result) counts as failed too.
#
# When no target pattern is given (CI), it then runs, each step's tests
# counted in the summary line and failing the run when they fail
# (tools/SANITIZERS.md): the library packages under --config=asan (the
# executor suite and fault matrix over the unix transport, every start
# method), the same under --config=tsan (unix; forkserver and spawn), and the
# library built by clang with its thread-safety analysis as errors
# (tools/thread_safety.sh, --config=clang_tsa), the layering check
# (tools/check_layering.sh --bazel: file size, mutual includes, package
# cycles), and the fuzz targets for PROCPOOL_FUZZ_SECONDS (default 30) each
# (tools/fuzz.sh). PROCPOOL_SKIP_SANITIZERS=1 leaves out ASan and TSan,
# PROCPOOL_SKIP_FUZZ=1 the fuzzing; the thread-safety and layering checks
# always run (they need clang-14, which tools/setup.sh installs).
#
# Usage: bash tools/test.sh [bazel flags] [target patterns; default //...]
# The consumer runs only when no target pattern is given, and not when
# PROCPOOL_SKIP_CONSUMER=1. Flags apply to the main workspace only.
# --keep_going is on so that one broken package does not hide the results of
# the others; .bazelrc already sets --test_output=errors.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

flags=()
patterns=()
for a in "$@"; do
  if [[ "$a" == -* ]]; then flags+=("$a"); else patterns+=("$a"); fi
done
pattern_given="${patterns[*]:-}"
if ((${#patterns[@]} == 0)); then patterns=(//...); fi
args=("${flags[@]}" "${patterns[@]}")

log="$(mktemp "${TMPDIR:-/tmp}/procpool_test.XXXXXX")"
# Older than every test log this run writes: the sanitizer scan below skips
# older run_N_of_M/ logs (left by an earlier --runs_per_test run; a cached
# result's own test.log is still read).
stamp="$(mktemp "${TMPDIR:-/tmp}/procpool_test_start.XXXXXX")"
trap 'rm -f "$log" "$stamp"' EXIT

echo "test.sh: bazel test --keep_going ${args[*]}"
bazel test --keep_going "${args[@]}" 2>&1 | tee "$log"
rc="${PIPESTATUS[0]}"

# Bazel's per-target summary, e.g. "//executor:submit_test  (cached) PASSED in 3.1s".
status_re='^(//|@)[^ ]+ +(\(cached\) +)?(PASSED|FLAKY|FAILED|TIMEOUT|NO STATUS|INCOMPLETE|REMOTE FAILURE|BUILD FAILURE)'
reported="$(grep -E "$status_re" "$log" | awk '{print $1}' | sort -u)"
passed="$(grep -E "$status_re" "$log" | grep -Ec ' (PASSED|FLAKY) in ' || true)"
failed="$(grep -E "$status_re" "$log" | grep -Evc ' (PASSED|FLAKY) in ' || true)"

if ((rc != 0)); then
  # Tests that failed to load, analyze or build get no summary line under
  # --keep_going: find them by asking which tests the patterns name.
  set_expr="$(printf '%s + ' "${patterns[@]}")"
  set_expr="${set_expr% + }"
  expected="$(bazel query --keep_going \
    "tests(${set_expr}) except attr(tags, '\bmanual\b', tests(${set_expr}))" \
    2>/dev/null | grep -E '^(//|@)' | sort -u || true)"
  unreported="$(comm -23 <(echo "$expected" | grep . || true) \
    <(echo "$reported" | grep . || true))"
  if [[ -n "$unreported" ]]; then
    echo
    echo "test.sh: tests that did not run (failed to load, analyze or build):"
    sed 's/^/  /' <<<"$unreported"
    failed=$((failed + $(grep -c . <<<"$unreported")))
  fi
  if ((failed == 0)); then
    echo "test.sh: bazel test exited $rc before reporting any failed test (see above)"
    failed=1
  fi
fi

# Sanitizer reports in the logs of tests that passed: a worker's report reaches
# the test's log (the worker inherits stderr) but not its result.
san_re='ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer'
testlogs="$(readlink -f bazel-testlogs 2>/dev/null || true)"
reported_clean=""
if [[ -n "$testlogs" ]]; then
  for t in $(grep -E "$status_re" "$log" | grep -E ' (PASSED|FLAKY) in ' |
    awk '{print $1}' | grep '^//' | sort -u); do
    dir="${t#//}"
    dir="$testlogs/${dir/://}"
    if [[ -d "$dir" ]] &&
      found="$(find "$dir" -name test.log \( -newer "$stamp" -o \
        -not -path '*/run_*_of_*/*' \) -print0 |
        xargs -0 -r grep -lE "$san_re")" && [[ -n "$found" ]]; then
      reported_clean+="  $t: $(head -n1 <<<"$found")"$'\n'
      passed=$((passed - 1))
      failed=$((failed + 1))
    fi
  done
fi
if [[ -n "$reported_clean" ]]; then
  echo
  echo "test.sh: tests that passed but whose log holds a sanitizer report:"
  printf '%s' "$reported_clean"
  if ((rc == 0)); then rc=3; fi
fi

# The steps an environment variable left out of a full run (the summary
# line names them).
skipped=()
if [[ -z "$pattern_given" && "${PROCPOOL_SKIP_CONSUMER:-0}" == 1 ]]; then
  skipped+=("consumer (PROCPOOL_SKIP_CONSUMER=1)")
fi
if [[ -z "$pattern_given" && "${PROCPOOL_SKIP_CONSUMER:-0}" != 1 ]]; then
  echo
  bash examples/consumer/test_consumer.sh 2>&1 | tee "$log"
  consumer_rc="${PIPESTATUS[0]}"
  consumer_re='^consumer: [0-9]+ passed, [0-9]+ failed$'
  if line="$(grep -E "$consumer_re" "$log" | tail -1)"; then
    read -r _ p _ f _ <<<"$line"
    passed=$((passed + p))
    failed=$((failed + f))
  elif ((consumer_rc != 0)); then
    failed=$((failed + 1))
  fi
  if ((rc == 0 && consumer_rc != 0)); then rc="$consumer_rc"; fi
fi

# Runs one more step of the full run (a command that ends with the line
# "[fuzz: ]N passed, M failed") and adds its counts.
step() {
  local name="$1"
  shift
  echo
  echo "test.sh: $name: $*"
  "$@" 2>&1 | tee "$log"
  local step_rc="${PIPESTATUS[0]}" line p f
  if line="$(grep -E '^(fuzz: )?[0-9]+ passed, [0-9]+ failed$' "$log" | tail -1)"; then
    read -r p f <<<"$(sed -E 's/^(fuzz: )?([0-9]+) passed, ([0-9]+) failed$/\2 \3/' <<<"$line")"
    echo "test.sh: $name: $p passed, $f failed"
    passed=$((passed + p))
    failed=$((failed + f))
    if ((step_rc != 0 && f == 0)); then failed=$((failed + 1)); fi
  elif ((step_rc != 0)); then
    failed=$((failed + 1))
  fi
  if ((rc == 0 && step_rc != 0)); then rc="$step_rc"; fi
}

if [[ -z "$pattern_given" ]]; then
  # The library packages; examples/ and tools/ run in the normal build only.
  san_patterns=(//cluster:all //common/... //core/... //executor/... //fuzz/...
    //serialization/... //shared_array/... //testing/... //third_party/...
    //transport/... //worker/...)
  # TSan: the unix transport only (time), and .bazelrc's test:tsan filter
  # (repeated here, since this one replaces it): no fork start method, no
  # test whose time bound TSan's slowdown breaks.
  tsan_patterns=(//common/... //core/... //executor/... //fuzz/... //serialization/...
    //shared_array/... //testing/... //third_party/... //transport/unix/...
    //worker/...)
  tsan_filter='-*shm*:*capnp*:*_fork:*S14CrashWhileALargePayloadIsInFlight*:*HugeFrameEcho*'
  # ASan: every package, but the executor suite and fault matrix only over
  # the unix transport (all start methods): 9 parameter sets under ASan do
  # not fit CI's time. The shm and capnp packages' own tests still run. The
  # executor suite's names end in /TRANSPORT_METHOD, the fault matrix's in
  # /POINT_MODE_TRANSPORT_METHOD (hence its own two patterns).
  # ParentDeathUnblocksTheChild (shm) relies on a 20 ms window that ASan's
  # slowdown can miss; it runs in the normal build.
  asan_filter='-*/shm_*:*/capnp_*:*FaultMatrixTest.*_shm_*:*FaultMatrixTest.*_capnp_*'
  asan_filter+=':*ParentDeathUnblocksTheChild*'
  if [[ "${PROCPOOL_SKIP_SANITIZERS:-0}" == 1 ]]; then
    skipped+=("ASan and TSan (PROCPOOL_SKIP_SANITIZERS=1)")
  else
    step "ASan" bash tools/test.sh "${flags[@]}" --config=asan \
      "--test_filter=$asan_filter" "${san_patterns[@]}"
    step "TSan" bash tools/test.sh "${flags[@]}" --config=tsan \
      "--test_filter=$tsan_filter" "${tsan_patterns[@]}"
  fi
  # The lock contracts, checked by clang (tools/thread_safety.sh).
  step "thread-safety" bash tools/thread_safety.sh "${flags[@]}"
  # The house rules: file size, no mutual includes, no package cycles.
  step "layering" bash -c 'if bash tools/check_layering.sh --bazel; then
      echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; exit 1; fi'
  if [[ "${PROCPOOL_SKIP_FUZZ:-0}" == 1 ]]; then
    skipped+=("fuzz (PROCPOOL_SKIP_FUZZ=1)")
  else
    step "fuzz" bash tools/fuzz.sh --seconds="${PROCPOOL_FUZZ_SECONDS:-30}"
  fi
fi

summary="${passed} passed, ${failed} failed"
if ((${#skipped[@]} > 0)); then
  summary+="; skipped: $(printf '%s, ' "${skipped[@]}")"
  summary="${summary%, }"
fi
echo "$summary"
exit "$rc"
