#!/usr/bin/env bash
# Runs //examples/wordcount over a generated tree and checks its totals against
# `wc` run file by file, for several chunk sizes and start methods.
set -euo pipefail

bin="$1"
root="${TEST_TMPDIR:-$(mktemp -d)}/tree"
rm -rf "$root"
mkdir -p "$root/a/b" "$root/c" "$root/empty"

# 150 small text files, one empty file, one file with no final newline, and a
# symbolic link (skipped by the example). Text only: on other bytes coreutils'
# wc counts words differently (printable characters only).
for i in $(seq 1 150); do
  d="$root/a"; ((i % 3 == 0)) && d="$root/a/b"; ((i % 5 == 0)) && d="$root/c"
  for j in $(seq 1 $((i % 17))); do
    printf 'line %d of file %d\twith  some   words\n' "$j" "$i"
  done >"$d/file$i.txt"
done
: >"$root/c/empty.txt"
printf 'no final newline, five words' >"$root/c/nonl.txt"
ln -s "$root/a" "$root/link"

read -r want_lines want_words want_bytes < <(
  find "$root" -type f -print0 | while IFS= read -r -d '' f; do
    LC_ALL=C wc -lwc <"$f"
  done | awk '{l += $1; w += $2; c += $3} END {print l, w, c}')
want_files="$(find "$root" -type f | wc -l)"
echo "wc: $want_files files, $want_lines lines, $want_words words, $want_bytes bytes"

fail=0
for args in "--chunksize=1" "--chunksize=7 --procpool_max_workers=2" \
    "--chunksize=64 --procpool_start_method=spawn"; do
  echo "=== wordcount --root=$root $args"
  # shellcheck disable=SC2086
  out="$("$bin" --root="$root" $args)" || { echo "FAIL: exited $?" >&2; exit 1; }
  echo "$out"
  for label in parallel sequential; do
    line="$(grep "^$label " <<<"$out")" || { echo "FAIL: no $label line" >&2; fail=1; continue; }
    read -r _ files _ lines _ words _ bytes _ <<<"$line"
    if [[ "$files $lines $words $bytes" != "$want_files $want_lines $want_words $want_bytes" ]]; then
      echo "FAIL: $label: got $files $lines $words $bytes," \
        "want $want_files $want_lines $want_words $want_bytes" >&2
      fail=1
    fi
  done
  grep -qx 'match: parallel == sequential' <<<"$out" || { echo "FAIL: no match line" >&2; fail=1; }
done

if ((fail)); then exit 1; fi
echo "PASS"
