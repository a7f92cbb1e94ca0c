#!/usr/bin/env bash
# Runs //examples/pipeline small and checks its totals against the known
# values, that every block is reported exactly once, and that a progress bar
# reached the end on stderr.
set -euo pipefail

bin="$1"
err="${TEST_TMPDIR:-/tmp}/pipeline_stderr"
for args in "--n=1000000 --blocks=7" \
    "--n=10000000 --blocks=37 --procpool_max_workers=2 --procpool_start_method=spawn"; do
  echo "=== pipeline $args"
  # shellcheck disable=SC2086
  out="$("$bin" $args 2>"$err")" || { cat "$err" >&2; echo "FAIL: exited $?" >&2; exit 1; }
  echo "$out"
  cat "$err"
  grep -qx 'matches the known values' <<<"$out" || { echo "FAIL: totals" >&2; exit 1; }
  blocks="${args#*--blocks=}"; blocks="${blocks%% *}"
  got="$(grep -E '^block +[0-9]+ ' <<<"$out" | awk '{print $2}' | sort -n | uniq | wc -l)"
  lines="$(grep -cE '^block +[0-9]+ ' <<<"$out")"
  if [[ "$got" != "$blocks" || "$lines" != "$blocks" ]]; then
    echo "FAIL: $lines block lines for $got distinct blocks, want $blocks" >&2
    exit 1
  fi
  grep -qE "^\[#+\] $blocks/$blocks blocks" "$err" || { echo "FAIL: no finished progress bar" >&2; exit 1; }
done
echo "PASS"
