#!/usr/bin/env bash
# The Kafka listener's produce rate against the number of connections:
# `quiver bench kafka-produce` (5 M records of 100 B, 4 partitions, one
# 1,000-record batch per request, acks=-1) with 4, 8 and 16 producers, each
# its own connection with one request in flight, two rounds, each run on a
# fresh default broker (fsync on).
#
#   cargo build --release && bench/kafka-connections.sh
set -euo pipefail
cd "$(dirname "$0")/.."
Q=$(realpath "${QUIVER:-target/release/quiver}")
work=$(mktemp -d)
for producers in 4 8 16 4 8 16; do
    rm -rf "$work/b"; mkdir -p "$work/b"
    (cd "$work/b" && exec "$Q" serve --listen 127.0.0.1:7751 --http off --kafka-listen 127.0.0.1:19095 2>"$work/b.log") &
    pid=$!
    until grep -q "listen=" "$work/b.log" 2>/dev/null; do sleep 0.05; done
    QUIVER_BROKER=127.0.0.1:7751 QUIVER_CA="$work/b/quiver-data/tls/cert.pem" \
      "$Q" bench kafka-produce --kafka 127.0.0.1:19095 --records 5000000 --producers $producers --partitions 4 --batch-size 1000 \
      --broker-pid "$pid" --json | python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print('$producers', round(d['records_per_sec']/1e6,3), 'M/s client', round(d['client_cpu_us_per_record'],3), 'broker', round(d['broker_cpu_us_per_record'],3), 'p99', d['p99_ms'])"
    kill -TERM $pid; wait $pid 2>/dev/null || true
done
rm -rf "$work"
