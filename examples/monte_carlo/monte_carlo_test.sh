#!/usr/bin/env bash
# Runs //examples/monte_carlo small under each start method and checks that the
# estimate is near pi (which also shows that every worker's initializer ran:
# CountInside throws in a worker that was not seeded).
set -euo pipefail

bin="$1"
for method in forkserver spawn fork; do
  echo "=== monte_carlo --procpool_start_method=$method"
  out="$("$bin" --batches=8 --samples=500000 --procpool_max_workers=2 \
    --procpool_start_method="$method")" || { echo "FAIL: exited $?" >&2; exit 1; }
  echo "$out"
  pi="$(sed -n 's/^pi ~= \([0-9.]*\) .*/\1/p' <<<"$out")"
  if ! awk -v pi="$pi" 'BEGIN {d = pi - 3.14159265; exit !(pi != "" && d < 0.01 && d > -0.01)}'; then
    echo "FAIL: estimate '$pi' is not within 0.01 of pi" >&2
    exit 1
  fi
done
echo "PASS"
