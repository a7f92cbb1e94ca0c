#!/usr/bin/env bash
# The chaos campaign (issue 16 point 1; outside CI): `chaos --dense` per
# transport and start method until N faults have fired per transport (split
# evenly across its start methods), each run with a fixed seed that is printed
# first. Prints one summary line per run (faults, waves, seconds, faults/s,
# kinds hit, hung, unresolved, leaks, wrong results) and the totals per
# transport and overall. On any failed run it prints the seed, the waves that
# found a problem (from chaos's stderr) and the command that replays them
# (--seed=S --only_wave=W). Exit status: 0 if every run was OK, 1 otherwise.
#
# Usage:
#   tools/chaos_campaign.sh [--faults=N] [--seed=S] [--transports="shm unix capnp"]
#                           [--chaos=PATH] [--out=DIR]
#     --faults=N      faults per transport (default 10000), split across its
#                     start methods: fork, forkserver and spawn (capnp: only
#                     forkserver and spawn; it does not run with fork)
#     --seed=S        base seed (default 20261207); run k uses S + k
#     --transports=L  which transports (default "shm unix capnp")
#     --chaos=PATH    the chaos binary (default: built with
#                     `bazel build -c opt //tools:chaos`, then bazel-bin/...)
#     --out=DIR       keep each run's JSON and stderr there (default: a
#                     temporary directory, removed at the end unless a run
#                     failed)
#   Run it under nice on a shared machine:
#     nice tools/chaos_campaign.sh --faults=10000
#
# Every chaos run is bounded: --seconds is set to allow 5 faults/s at the
# least (dense runs make 25-40 per second here), and `timeout` kills a run that
# overstays that by 120 s. Cleans up: its temporary directory (unless a run
# failed or --out was given); chaos itself kills and reaps whatever a wave
# leaves behind.
set -euo pipefail

faults=10000
seed=20261207
transports="shm unix capnp"
chaos=""
out=""
for arg in "$@"; do
  case "$arg" in
    --faults=*) faults="${arg#*=}" ;;
    --seed=*) seed="${arg#*=}" ;;
    --transports=*) transports="${arg#*=}" ;;
    --chaos=*) chaos="${arg#*=}" ;;
    --out=*) out="${arg#*=}" ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "chaos_campaign: unknown argument $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

cd "$(dirname "$0")/.."
if [[ -z "$chaos" ]]; then
  bazel build -c opt //tools:chaos >&2
  chaos="$(bazel info -c opt bazel-bin 2>/dev/null)/tools/chaos"
fi
[[ -x "$chaos" ]] || { echo "chaos_campaign: no chaos binary at $chaos" >&2; exit 2; }

keep_out=1
if [[ -z "$out" ]]; then
  out="$(mktemp -d "${TMPDIR:-/tmp}/chaos_campaign.XXXXXX")"
  keep_out=0
fi
mkdir -p "$out"
cleanup() { if ((keep_out == 0)); then rm -rf "$out"; fi; }
trap cleanup EXIT

# The integer (or decimal) value of JSON field $1 in file $2 (-1 if absent).
field() {
  grep -oE "\"$1\": [0-9.]+" "$2" | head -1 | grep -oE '[0-9.]+$' || echo -1
}

echo "chaos campaign: $faults faults per transport, base seed $seed, chaos $chaos"
printf '%-6s %-10s %-11s %6s %6s %7s %6s %5s %4s %4s %4s %4s %5s %s\n' \
  transport method seed faults waves seconds f/s kinds hung unre leak wrong other result
failed=0
run=0
declare -A t_faults t_waves t_seconds
for transport in $transports; do
  methods="fork forkserver spawn"
  [[ "$transport" == capnp ]] && methods="forkserver spawn"
  n_methods="$(wc -w <<<"$methods")"
  per_run=$(((faults + n_methods - 1) / n_methods))
  t_faults[$transport]=0
  t_waves[$transport]=0
  t_seconds[$transport]=0
  for method in $methods; do
    run_seed=$((seed + run))
    run=$((run + 1))
    bound=$((per_run / 5 + 30))
    json="$out/$transport-$method.json"
    err="$out/$transport-$method.err"
    rc=0
    timeout --kill-after=10 $((bound + 120)) "$chaos" --transport="$transport" \
      --start_method="$method" --dense --faults="$per_run" --seconds="$bound" \
      --seed="$run_seed" --json >"$json" 2>"$err" || rc=$?
    f="$(field faults "$json")"
    w="$(field waves "$json")"
    s="$(field seconds "$json")"
    leaks=$(($(field leaked_processes "$json") + $(field leaked_fds "$json") + \
      $(field leaked_mappings "$json")))
    rate="$(awk -v f="$f" -v s="$s" 'BEGIN { printf "%.1f", (s > 0 ? f / s : 0) }')"
    result=OK
    if [[ "$rc" != 0 ]] || ! grep -q '"ok": true' "$json" || ((f < per_run)); then
      result="FAILED (rc $rc)"
      failed=1
    fi
    printf '%-6s %-10s %-11s %6s %6s %7s %6s %5s %4s %4s %4s %4s %5s %s\n' \
      "$transport" "$method" "$run_seed" "$f" "$w" "$s" "$rate" \
      "$(field fault_kinds_hit "$json")/$(field fault_kinds "$json")" \
      "$(field hung "$json")" "$(field unresolved "$json")" "$leaks" \
      "$(field wrong_results "$json")" "$(field tasks_failed_other "$json")" \
      "$result"
    # Faults per kind, on one line, for the record.
    echo "  by kind: $(grep -oE '"faults_by_kind": \{[^}]*\}' "$json" |
      sed 's/"faults_by_kind": //; s/"//g')"
    if [[ "$result" != OK ]]; then
      echo "  FAILED: seed $run_seed; its problems (from $err):"
      grep -E 'PROBLEM|problem:|replay:' "$err" | head -40 | sed 's/^/    /' || true
      if ! grep -q 'replay:' "$err"; then
        echo "    replay the whole run: $chaos --transport=$transport" \
          "--start_method=$method --dense --faults=$per_run --seed=$run_seed" \
          "--seconds=$bound --verbose"
      fi
      keep_out=1
    fi
    if [[ "$f" != -1 ]]; then
      t_faults[$transport]=$((t_faults[$transport] + f))
      t_waves[$transport]=$((t_waves[$transport] + w))
      t_seconds[$transport]="$(awk -v a="${t_seconds[$transport]}" -v b="$s" \
        'BEGIN { printf "%.1f", a + b }')"
    fi
  done
done
echo "totals:"
all_f=0
all_s=0
for transport in $transports; do
  printf '  %-6s %7d faults %7d waves %8s s  %s faults/s\n' "$transport" \
    "${t_faults[$transport]}" "${t_waves[$transport]}" "${t_seconds[$transport]}" \
    "$(awk -v f="${t_faults[$transport]}" -v s="${t_seconds[$transport]}" \
      'BEGIN { printf "%.1f", (s > 0 ? f / s : 0) }')"
  all_f=$((all_f + t_faults[$transport]))
  all_s="$(awk -v a="$all_s" -v b="${t_seconds[$transport]}" 'BEGIN { printf "%.1f", a + b }')"
done
printf '  %-6s %7d faults %15s %8s s\n' all "$all_f" "" "$all_s"
if ((failed)); then
  echo "chaos campaign: FAILED (runs kept in $out)"
  exit 1
fi
echo "chaos campaign: OK (0 hung, 0 unresolved, 0 leaked, 0 wrong results in every run)"
