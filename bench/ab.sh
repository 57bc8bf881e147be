#!/usr/bin/env bash
# Produce throughput of two `quiver` builds, alternated in one window on
# fresh brokers with their defaults (fsync on), so a change's effect is
# read as a ratio rather than against figures from another day:
#
#   bench/ab.sh OLD/quiver NEW/quiver
#
# ROUNDS (default 3) alternations; RECORDS (default 5,000,000) 100-byte
# records per run, 4 producers, 4 partitions, batches of 1,000. WORKLOAD
# replaces the `quiver bench` arguments, e.g.
#   WORKLOAD="consume --records 5000000 --partitions 4" bench/ab.sh OLD NEW
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=$(realpath "$1")
NEW=$(realpath "$2")
ROUNDS=${ROUNDS:-3}
RECORDS=${RECORDS:-5000000}
WORKLOAD=${WORKLOAD:-produce --records $RECORDS --producers 4 --partitions 4 --batch-size 1000}
PORT=${PORT:-7720}
. bench/lib.sh
export QUIVER_BROKER=127.0.0.1:$PORT

run() {
    local bin=$1
    rm -rf "$work/q" && mkdir -p "$work/q"
    # Builds with a Kafka listener get it turned off, as older ones have none.
    local extra=()
    "$bin" serve --help | grep -q -- --kafka-listen && extra=(--kafka-listen off)
    (cd "$work/q" && exec "$bin" serve --listen "127.0.0.1:$PORT" --http off "${extra[@]}" \
        2>"$work/serve.log") &
    pid=$!
    export QUIVER_CA=$work/q/quiver-data/tls/cert.pem
    until grep -q "listen=" "$work/serve.log" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { tail -5 "$work/serve.log"; exit 1; }
        sleep 0.05
    done
    # shellcheck disable=SC2086
    "$bin" bench $WORKLOAD --broker-pid "$pid" --json | tail -1
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', ''))"; }

printf '%-5s %14s %10s %14s %14s\n' build records/s p99_ms client_us/rec broker_us/rec
for _ in $(seq "$ROUNDS"); do
    for name in old new; do
        bin=$OLD; [ "$name" = new ] && bin=$NEW
        json=$(run "$bin")
        printf '%-5s %14s %10s %14s %14s\n' "$name" \
            "$(field records_per_sec <<<"$json")" "$(field p99_ms <<<"$json")" \
            "$(field client_cpu_us_per_record <<<"$json")" \
            "$(field broker_cpu_us_per_record <<<"$json")"
    done
done
