#!/usr/bin/env bash
# Runs //examples/blur small over the transports that share memory, under each
# start method, and checks that it matches the sequential blur; over capnp
# (workers get copies, and what they write comes back) the same.
set -euo pipefail

bin="$1"
for transport in shm unix; do
  for method in forkserver spawn fork; do
    echo "=== blur --procpool_transport=$transport --procpool_start_method=$method"
    out="$(timeout 120 "$bin" --width=512 --height=300 --bands=5 \
      --procpool_max_workers=2 --procpool_transport="$transport" \
      --procpool_start_method="$method")" || { echo "FAIL: exited $?" >&2; exit 1; }
    echo "$out"
    grep -q "^matches the sequential blur$" <<<"$out" || { echo "FAIL: no match" >&2; exit 1; }
    grep -q ": 300 rows," <<<"$out" || { echo "FAIL: not every row" >&2; exit 1; }
  done
done
for method in forkserver spawn; do
  echo "=== blur --procpool_transport=capnp --procpool_start_method=$method"
  out="$(timeout 120 "$bin" --width=256 --height=90 --bands=4 \
    --procpool_max_workers=2 --procpool_transport=capnp \
    --procpool_start_method="$method")" || { echo "FAIL: exited $?" >&2; exit 1; }
  echo "$out"
  grep -q "^matches the sequential blur$" <<<"$out" || { echo "FAIL: no match" >&2; exit 1; }
  grep -q ": 90 rows," <<<"$out" || { echo "FAIL: not every row" >&2; exit 1; }
done
echo "PASS"
