#!/usr/bin/env bash
# Checks that a fuzz replay test fails when a regressions folder it names does
# not exist (a moved or mistyped folder must not silently stop the saved
# reproducers from running), and still passes on the folders that exist.
#
# Usage (Bazel sh_test, fuzz/BUILD):
#   replay_missing_folder_test.sh WIRE_REPLAY_BINARY CODEC_REPLAY_BINARY \
#     HANDSHAKE_REPLAY_BINARY HANDLE_REPLAY_BINARY
# Cleans up: nothing to clean (it writes only under $TEST_TMPDIR).
set -euo pipefail

declare -A replay=([wire]="$1" [codec]="$2" [handshake]="$3" [handle]="$4")
out="${TEST_TMPDIR:-/tmp}/replay_missing.out"

# A folder that does not exist: exit 1, naming it.
rc=0
timeout 120 "${replay[wire]}" wire fuzz/regressions/no_such_target >"$out" 2>&1 || rc=$?
if [[ "$rc" != 1 ]]; then
  echo "FAIL: replaying a missing folder exited $rc, not 1:"
  cat "$out"
  exit 1
fi
if ! grep -q "cannot replay fuzz/regressions/no_such_target" "$out"; then
  echo "FAIL: the error does not name the missing folder:"
  cat "$out"
  exit 1
fi
if grep -q "skipped" "$out"; then
  echo "FAIL: a missing folder was reported as skipped:"
  cat "$out"
  exit 1
fi

# The existing folders replay (the codec's and handshake's hold only .keep:
# zero files).
for target in wire codec handshake handle; do
  if ! timeout 120 "${replay[$target]}" "$target" "fuzz/regressions/$target" >"$out" 2>&1; then
    echo "FAIL: replaying fuzz/regressions/$target failed:"
    cat "$out"
    exit 1
  fi
  grep -E "^$target: [0-9]+ seeds, [0-9]+ files, [0-9]+ runs: ok$" "$out"
done
echo "PASS"
