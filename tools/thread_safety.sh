#!/usr/bin/env bash
# Builds the library packages with clang's thread-safety analysis
# (--config=clang_tsa in .bazelrc; the toolchain is
# third_party/toolchains/clang): every ABSL_GUARDED_BY,
# ABSL_EXCLUSIVE_LOCKS_REQUIRED, ABSL_LOCKS_EXCLUDED and ABSL_UNLOCK_FUNCTION
# written on our members is checked, and a violation is an error
# (-Werror=thread-safety), so CI fails on it. gcc, the normal build, ignores
# these attributes.
#
# Prints the compiler's findings, then one summary line for tools/test.sh:
#   1 passed, 0 failed    (or 0 passed, 1 failed)
# and exits with Bazel's exit code.
#
# Usage: bash tools/thread_safety.sh [bazel flags] [target patterns]
# Default patterns: the library packages and their tests.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

flags=()
patterns=()
for a in "$@"; do
  if [[ "$a" == -* ]]; then flags+=("$a"); else patterns+=("$a"); fi
done
if ((${#patterns[@]} == 0)); then
  patterns=(//common/... //serialization/... //transport/... //core/... //executor/... //cluster/...
    //worker/... //testing/...)
fi

echo "thread_safety.sh: bazel build --config=clang_tsa ${flags[*]:-} ${patterns[*]}"
bazel build --config=clang_tsa --keep_going "${flags[@]}" "${patterns[@]}"
rc=$?
if ((rc == 0)); then
  echo "1 passed, 0 failed"
else
  echo "thread_safety.sh: the clang thread-safety build failed (exit $rc):" \
    "fix each 'requires holding mutex' / 'guarded_by' error above, or, where" \
    "the contract is right and clang cannot see it, say why in an" \
    "ABSL_NO_THREAD_SAFETY_ANALYSIS comment"
  echo "0 passed, 1 failed"
fi
exit "$rc"
