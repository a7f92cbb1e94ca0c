#!/usr/bin/env bash
# Runs //examples/blur small over the transports that share memory, under each
# start method, and checks that it matches the sequential blur; over capnp
# (workers get copies) the output array must be refused with advice.
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
echo "=== blur --procpool_transport=capnp (refused)"
rc=0
out="$(timeout 120 "$bin" --width=64 --height=64 --bands=2 \
  --procpool_transport=capnp 2>&1)" || rc=$?
echo "$out"
if [[ "$rc" == 0 ]]; then echo "FAIL: capnp ran an output array" >&2; exit 1; fi
grep -q "procpool_transport=shm" <<<"$out" || { echo "FAIL: no advice" >&2; exit 1; }
echo "PASS"
