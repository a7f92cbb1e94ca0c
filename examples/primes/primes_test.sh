#!/usr/bin/env bash
# Runs //examples/primes once per mode and start method and checks its answers
# (112272535095293 is prime; 1099726899285419 = 3306091 * 332636609 is not).
set -euo pipefail

bin="$1"
fail=0

expect() {  # expect OUTPUT LINE
  if ! grep -qxF -- "$2" <<<"$1"; then
    echo "FAIL: missing line: $2" >&2
    fail=1
  fi
}

for args in "" "--as_completed" "--procpool_start_method=spawn" \
    "--procpool_start_method=fork --procpool_max_workers=2"; do
  echo "=== primes $args"
  # shellcheck disable=SC2086
  out="$("$bin" $args)" || { echo "FAIL: primes $args exited $?" >&2; exit 1; }
  echo "$out"
  expect "$out" "112272535095293 is prime: true"
  expect "$out" "112582705942171 is prime: true"
  expect "$out" "115280095190773 is prime: true"
  expect "$out" "115797848077099 is prime: true"
  expect "$out" "1099726899285419 is prime: false"
  n="$(grep -c ' is prime: ' <<<"$out")"
  if [[ "$n" != 6 ]]; then
    echo "FAIL: expected 6 result lines, got $n" >&2
    fail=1
  fi
  grep -q '^elapsed: ' <<<"$out" || { echo "FAIL: no elapsed line" >&2; fail=1; }
done

if ((fail)); then exit 1; fi
echo "PASS"
