#!/usr/bin/env bash
# The figures in RELIABILITY.md, measured against a real `quiver serve` on
# 127.0.0.1: connections held and memory per connection, restart time after
# SIGKILL (and after a clean stop) with RECORDS records stored, and the time
# to detect and recover from a full disk (the broker's storage limit, which
# fails writes as ENOSPC does).
#
#   cargo build --release && bench/reliability.sh
#   QUIVER=target/debug/quiver RECORDS=200000 bench/reliability.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-2000000}
CONNECTIONS=${CONNECTIONS:-1000}
PORT=${PORT:-7700}
HTTP_PORT=$((PORT + 1))
. bench/lib.sh
export QUIVER_BROKER=127.0.0.1:$PORT QUIVER_CA=$work/data/tls/cert.pem

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# Starts the broker on $work/data with extra flags; waits for /ready.
start() {
    "$QUIVER" serve --listen "127.0.0.1:$PORT" --http "127.0.0.1:$HTTP_PORT" \
        --data-dir "$work/data" --max-connections-per-ip "$CONNECTIONS" "$@" \
        2>>"$work/serve.log" &
    pid=$!
    until [ "$(ready)" = 200 ]; do
        kill -0 "$pid" 2>/dev/null || { tail -5 "$work/serve.log"; exit 1; }
        sleep 0.01
    done
}
ready() { curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/ready" || true; }

echo "# machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; binary: $QUIVER"
start
echo "## connections"
"$QUIVER" bench connections --count "$CONNECTIONS" --hold-secs 5 --broker-pid "$pid"

echo "## restart with $RECORDS records of 100 B"
"$QUIVER" bench produce --topic restart --records "$RECORDS" --keep --json >/dev/null
echo "database: $(du -h "$work/data/quiver.redb" | cut -f1)"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
t=$(now); start; echo "ready after SIGKILL in $(since "$t") s"
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
t=$(now); start; echo "ready after a clean stop in $(since "$t") s"
"$QUIVER" topic delete restart --force >/dev/null
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
rm -rf "$work/data"

echo "## full disk (storage limit 256 MiB, reserve 16 MiB)"
start --max-storage-mb 256 --reserve-mb 16
"$QUIVER" topic create kept --partitions 1 >/dev/null
"$QUIVER" topic create fill --partitions 4 >/dev/null
t=$(now)
if "$QUIVER" bench produce --topic fill --records 100000000 --record-size 1000 --keep --json \
    >/dev/null 2>"$work/fill.err"; then
    echo "the limit was never reached"; exit 1
fi
echo "filled in $(since "$t") s: $(cut -c1-120 "$work/fill.err")"
echo "/ready: $(ready)"
t=$(now)
"$QUIVER" topic delete fill >/dev/null
echo "topic delete on the full disk took $(since "$t") s; /ready: $(ready)"
echo "one" | "$QUIVER" produce kept >/dev/null
echo "produce resumed $(since "$t") s after the delete began"
