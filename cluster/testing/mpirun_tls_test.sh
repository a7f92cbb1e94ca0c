#!/usr/bin/env bash
# TLS on a cluster (cluster/mpi.h, MpiClusterOptions::tls_*): under mpirun on
# this host, 3 ranks whose worker daemons serve TLS with a self-signed
# certificate made here for this host's name. Checks that
#   1. the job runs (RESULT ok) and rank 0's non-zero status is reported on
#      stderr (mpirun --enable-recovery itself returns 0);
#   2. a certificate for another name is refused by rank 0's pool (hostname
#      mismatch), which says so instead of running anything;
#   3. a certificate flag without its key is refused before MPI_Init.
# Needs openssl and Open MPI (tools/setup.sh). Cleans up its temp dir.
#
# Usage: mpirun_tls_test.sh PROBE
set -euo pipefail
TMP=$(mktemp -d)
trap 'pkill -KILL -f "$TMP/" 2>/dev/null || true; rm -rf "$TMP"' EXIT
# A private copy of the probe, so that the leftover check below finds this
# run's processes only (parallel runs share the runfiles path).
PROBE="$TMP/cluster_probe"
cp "$(readlink -f "$1")" "$PROBE"
HOST=$(hostname)
MPIRUN=(timeout 120 mpirun --allow-run-as-root --oversubscribe --enable-recovery -n 3)
fail() { echo "FAIL: $*" >&2; exit 1; }

cert() {  # NAME -> $TMP/NAME.pem, $TMP/NAME.key
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" \
    -addext "subjectAltName=DNS:$1" -keyout "$TMP/$1.key" -out "$TMP/$1.pem" \
    2>/dev/null
}
cert "$HOST"
cert "not-$HOST"

echo "== 1. TLS with a certificate for $HOST"
rc=0
"${MPIRUN[@]}" "$PROBE" --procpool_cluster=mpi --scenario=exit_code \
  --procpool_cluster_tls_cert_file="$TMP/$HOST.pem" \
  --procpool_cluster_tls_key_file="$TMP/$HOST.key" \
  --procpool_cluster_tls_ca_file="$TMP/$HOST.pem" \
  >"$TMP/out1" 2>"$TMP/err1" || rc=$?
cat "$TMP/out1"
grep -q "^RESULT ok sum=328350$" "$TMP/out1" || { cat "$TMP/err1"; fail "1: no RESULT over TLS"; }
grep -q "^WORKERS 2$" "$TMP/out1" || fail "1: expected 2 workers"
grep -q "procpool: rank 0 exited with status 7" "$TMP/err1" ||
  { cat "$TMP/err1"; fail "1: rank 0's status 7 not reported"; }
[[ $rc -eq 0 ]] || fail "1: mpirun returned $rc (expected 0 under --enable-recovery)"

echo "== 2. a certificate for another host name is refused"
"${MPIRUN[@]}" "$PROBE" --procpool_cluster=mpi --scenario=ok \
  --procpool_cluster_tls_cert_file="$TMP/not-$HOST.pem" \
  --procpool_cluster_tls_key_file="$TMP/not-$HOST.key" \
  --procpool_cluster_tls_ca_file="$TMP/not-$HOST.pem" \
  >"$TMP/out2" 2>"$TMP/err2" || true
cat "$TMP/out2"
grep -q "^MAP_FAILED .*hostname mismatch" "$TMP/out2" ||
  { cat "$TMP/err2"; fail "2: a wrong certificate was not refused by name"; }
grep -q "^RESULT" "$TMP/out2" && fail "2: tasks ran with a wrong certificate"

echo "== 3. a certificate without its key is refused"
# (mpirun --enable-recovery returns 0 here too: the message is the signal.)
"${MPIRUN[@]}" "$PROBE" --procpool_cluster=mpi \
  --procpool_cluster_tls_cert_file="$TMP/$HOST.pem" >"$TMP/out3" 2>"$TMP/err3" || true
grep -q "go together" "$TMP/err3" || { cat "$TMP/err3"; fail "3: no refusal"; }
grep -q "^RESULT" "$TMP/out3" && fail "3: the refused line ran tasks"

if pgrep -f "$PROBE" >/dev/null; then
  pgrep -fa "$PROBE" >&2
  fail "probe processes left behind"
fi
echo PASS
