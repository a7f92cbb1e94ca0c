#!/usr/bin/env bash
# Builds and runs every test (`bazel test //...`), then prints one plain
# summary line for CI as the very last line of output:
#
#   N passed, M failed
#
# counted from Bazel's per-target summary (PASSED and FLAKY count as passed;
# FAILED, TIMEOUT, NO STATUS, FAILED TO BUILD, INCOMPLETE and the like as
# failed). Exits with bazel's exit code (0: all passed, 3: some test failed,
# 1: build failed, ...).
#
# Usage: bash tools/test.sh [extra bazel test args, e.g. //executor/...]
# --keep_going is on so that one broken package does not hide the results of
# the others; .bazelrc already sets --test_output=errors.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

targets=("$@")
if ((${#targets[@]} == 0)); then targets=(//...); fi

log="$(mktemp "${TMPDIR:-/tmp}/procpool_test.XXXXXX")"
trap 'rm -f "$log"' EXIT

echo "test.sh: bazel test --keep_going ${targets[*]}"
bazel test --keep_going "${targets[@]}" 2>&1 | tee "$log"
rc="${PIPESTATUS[0]}"

# Lines such as "//executor:submit_test    (cached) PASSED in 3.1s".
target_re='^(//|@)[^ ]+ +(\(cached\) +)?'
pass_re="${target_re}(PASSED|FLAKY)"
any_re="${target_re}(PASSED|FLAKY|FAILED|TIMEOUT|NO STATUS|INCOMPLETE|REMOTE FAILURE|BUILD FAILURE)"
passed="$(grep -Ec "$pass_re" "$log" || true)"
all="$(grep -Ec "$any_re" "$log" || true)"
failed=$((all - passed))

if ((rc != 0 && failed == 0)); then
  # Bazel stopped before its test summary (e.g. a loading or analysis error):
  # nothing passed that we can vouch for.
  echo "test.sh: bazel test exited $rc before reporting any failed test (see above)"
  failed=1
fi
echo "${passed} passed, ${failed} failed"
exit "$rc"
