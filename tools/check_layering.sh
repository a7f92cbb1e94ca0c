#!/usr/bin/env bash
# Checks the repository's layering rules (issue 13) and prints what breaks them:
#
#   1. size:   no non-test .cc/.h outside third_party/ is over 600 lines. Test
#              code is *_test.cc/*_test.h and whatever sits in a directory
#              named testing/ or testdata/ (test suites and their helpers).
#   2. mutual: no two files include each other, counting a .h and its .cc as
#              one unit (so a.cc -> b.h together with b.h -> a.h is caught,
#              as launcher.cc -> fork_server.h -> launcher.h was).
#   3. cycles: the package dependency graph has no cycle. A package is a
#              directory with a BUILD file; the graph's edges come from the
#              #include "..." lines (a file's package -> the package of the
#              included path) and, with --bazel, also from
#              `bazel query 'deps(//...)'` restricted to //-labels (which adds
#              the BUILD-only edges: data, binaries, macros).
#
# Usage: tools/check_layering.sh [--bazel] [--max_lines=N]
# Exits 0 when every rule holds, 1 otherwise (2 on a usage error). Needs only
# bash, git and python3 (and bazel for --bazel); reads the files git knows
# (tracked and untracked-not-ignored) under the repository root.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

use_bazel=0
max_lines=600
for arg in "$@"; do
  case "$arg" in
    --bazel) use_bazel=1 ;;
    --max_lines=*) max_lines="${arg#--max_lines=}" ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "check_layering: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bazel_edges=""
if ((use_bazel)); then
  # One line per dependency edge: "//pkg:a" -> "//pkg2:b" (graph output, no
  # factoring of nodes so that each line is one edge).
  bazel_edges="$tmp/bazel_edges"
  if ! bazel query --noshow_progress --ui_event_filters=-info \
      'deps(//...)' --output=graph --nograph:factored \
      >"$bazel_edges" 2>/dev/null; then
    echo "check_layering: bazel query 'deps(//...)' failed" >&2
    exit 1
  fi
fi

git ls-files -z --cached --others --exclude-standard -- '*.cc' '*.h' \
    'BUILD' '*/BUILD' 'BUILD.bazel' '*/BUILD.bazel' >"$tmp/files"
python3 - "$max_lines" "$tmp/files" "$bazel_edges" <<'PY'
import os
import re
import sys

max_lines = int(sys.argv[1])
bazel_edges_file = sys.argv[3]
with open(sys.argv[2]) as f:
    paths = [p for p in f.read().split("\0") if p and os.path.exists(p)]

build_dirs = {os.path.dirname(p) for p in paths
              if os.path.basename(p) in ("BUILD", "BUILD.bazel")}
sources = [p for p in paths
           if p.endswith((".cc", ".h")) and not p.startswith("third_party/")]
source_set = set(sources)


def package_of(path):
    """The nearest directory at or above dirname(path) with a BUILD file."""
    d = os.path.dirname(path)
    while True:
        if d in build_dirs:
            return d
        if not d:
            return None
        d = os.path.dirname(d)


def is_test(path):
    base = os.path.basename(path)
    parts = path.split("/")[:-1]
    return (re.search(r"_test\.(cc|h)$", base) is not None
            or "testing" in parts or "testdata" in parts)


problems = []

# 1. size.
for p in sorted(sources):
    if is_test(p):
        continue
    with open(p, "rb") as f:
        n = f.read().count(b"\n")
    if n > max_lines:
        problems.append(f"size: {p} has {n} lines (limit {max_lines})")

# Include graph.
include_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
includes = {}  # file -> [included path as written]
for p in sources:
    with open(p, encoding="utf-8", errors="replace") as f:
        includes[p] = include_re.findall(f.read())


def unit(path):
    return re.sub(r"\.(cc|h)$", "", path)


# 2. mutual includes, file by file and unit (.h + .cc) by unit.
file_edges = {(a, b) for a, incs in includes.items() for b in incs
              if b in source_set and b != a}
for a, b in sorted(file_edges):
    if a < b and (b, a) in file_edges:
        problems.append(f"mutual: {a} and {b} include each other")
unit_edges = {}  # (unit a, unit b) -> example "file -> include"
for a, b in file_edges:
    ua, ub = unit(a), unit(b)
    if ua != ub:
        unit_edges.setdefault((ua, ub), f"{a} includes {b}")
mutual_files = {(unit(a), unit(b)) for a, b in file_edges
                if (b, a) in file_edges}
for (ua, ub), why in sorted(unit_edges.items()):
    if ua < ub and (ub, ua) in unit_edges and (ua, ub) not in mutual_files:
        problems.append(f"mutual: {ua}.h/.cc and {ub}.h/.cc include each "
                        f"other ({why}; {unit_edges[(ub, ua)]})")

# 3. package cycles.
pkg_edges = {}  # (pkg a, pkg b) -> example reason
for a, incs in includes.items():
    pa = package_of(a)
    if pa is None:
        continue
    for inc in incs:
        d = os.path.dirname(inc)
        if not d or not os.path.isdir(d):
            continue  # a system or third-party header ("absl/...", "capnp/...")
        pb = package_of(inc)
        if pb is None or pb == pa or pb.startswith("third_party"):
            continue
        pkg_edges.setdefault((pa, pb), f"{a} includes {inc}")

if bazel_edges_file:
    label_re = re.compile(r'"(//[^:"]*):[^"]*"\s*->\s*"(//[^:"]*):[^"]*"')
    with open(bazel_edges_file) as f:
        for line in f:
            m = label_re.search(line)
            if not m:
                continue
            pa, pb = m.group(1)[2:], m.group(2)[2:]
            if pa != pb and not pb.startswith("third_party"):
                pkg_edges.setdefault(
                    (pa, pb), "bazel: " + line.strip().replace('"', ""))

graph = {}
for a, b in pkg_edges:
    graph.setdefault(a, set()).add(b)
    graph.setdefault(b, set())

# Tarjan's strongly connected components, iteratively.
index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]
for root in sorted(graph):
    if root in index:
        continue
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = counter[0]
    counter[0] += 1
    stack.append(root)
    on_stack.add(root)
    while work:
        v, it = work[-1]
        advanced = False
        for w in it:
            if w not in index:
                index[w] = low[w] = counter[0]
                counter[0] += 1
                stack.append(w)
                on_stack.add(w)
                work.append((w, iter(sorted(graph[w]))))
                advanced = True
                break
            if w in on_stack:
                low[v] = min(low[v], index[w])
        if advanced:
            continue
        work.pop()
        if work:
            low[work[-1][0]] = min(low[work[-1][0]], low[v])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

for comp in sccs:
    members = set(comp)
    names = ", ".join("//" + c for c in comp)
    problems.append(f"cycle: packages {names} depend on each other:")
    for (a, b), why in sorted(pkg_edges.items()):
        if a in members and b in members:
            problems.append(f"    //{a} -> //{b}  ({why})")

for line in problems:
    print(line)
if problems:
    print(f"check_layering: FAILED ({sum(1 for l in problems if not l.startswith(' '))} problems)")
    sys.exit(1)
print(f"check_layering: OK ({len(sources)} files, {len(graph)} packages, "
      f"{len(pkg_edges)} package edges)")
PY
