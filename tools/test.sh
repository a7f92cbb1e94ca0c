#!/usr/bin/env bash
# Builds and runs every test (`bazel test //...`), then the consumer
# workspace (examples/consumer/test_consumer.sh: a separate Bazel workspace
# that takes procpool in as @procpool, built once and run once per transport),
# then prints one plain summary line for CI as the very last line of output:
#
#   N passed, M failed
#
# counted from Bazel's per-target summary: PASSED and FLAKY count as passed;
# FAILED, TIMEOUT, NO STATUS, INCOMPLETE and the like as failed, and so does
# every test that did not load, analyze or build (listed by name); each
# consumer run is one more test (its failed build, one failed test). Exits with
# bazel's exit code (0: all passed, 3: some test failed, 1: build failed, ...);
# if that is 0, with the consumer's (0, 3 for a failed run, 1 for a failed
# build).
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
trap 'rm -f "$log"' EXIT

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

echo "${passed} passed, ${failed} failed"
exit "$rc"
