#!/usr/bin/env bash
# Builds the consumer workspace (one build: the app and its worker binary) and
# runs the app once per transport it was linked with (`--list_transports`),
# each run counted as one test. Called by tools/test.sh; runs on its own too:
#
#   bash examples/consumer/test_consumer.sh [extra flags for the app]
#
# Prints one line per run, "consumer --procpool_transport=NAME PASSED|FAILED",
# then "consumer: N passed, M failed". Exits 0 if every run passed, 3 if some
# failed, 1 if the build failed (counted as one failed test).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
quiet=(--noshow_progress --ui_event_filters=-info)

echo "consumer: bazel build //:app //:worker (workspace examples/consumer)"
if ! bazel build //:app //:worker; then
  echo "consumer build FAILED"
  echo "consumer: 0 passed, 1 failed"
  exit 1
fi

if ! transports="$(bazel run "${quiet[@]}" //:app -- --list_transports)" ||
    [[ -z "$transports" ]]; then
  echo "consumer --list_transports FAILED"
  echo "consumer: 0 passed, 1 failed"
  exit 3
fi

passed=0
failed=0
for t in $transports; do
  echo "=== consumer: bazel run //:app -- --procpool_transport=$t $*"
  if bazel run "${quiet[@]}" //:app -- --procpool_transport="$t" "$@"; then
    echo "consumer --procpool_transport=$t PASSED"
    passed=$((passed + 1))
  else
    echo "consumer --procpool_transport=$t FAILED"
    failed=$((failed + 1))
  fi
done
echo "consumer: $passed passed, $failed failed"
((failed == 0)) || exit 3
