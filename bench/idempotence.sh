#!/usr/bin/env bash
# What the SDK producer's idempotence costs: `quiver bench produce` (5 M
# records of 100 B, 4 producers, 4 partitions, batches of 1,000) with and
# without `--no-idempotence`, alternating, three rounds, each run on a fresh
# default broker (fsync on): records/s, CPU per record, request p99.
#
#   cargo build --release && bench/idempotence.sh
set -euo pipefail
cd "$(dirname "$0")/.."
Q=$(realpath "${QUIVER:-target/release/quiver}")
work=$(mktemp -d)
for round in 1 2 3; do
  for mode in idem plain; do
    rm -rf "$work/b"; mkdir -p "$work/b"
    (cd "$work/b" && exec "$Q" serve --listen 127.0.0.1:7741 --http off --kafka-listen off 2>"$work/b.log") &
    pid=$!
    until grep -q "listen=" "$work/b.log" 2>/dev/null; do sleep 0.05; done
    extra=()
    [ "$mode" = plain ] && extra=(--no-idempotence)
    QUIVER_BROKER=127.0.0.1:7741 QUIVER_CA="$work/b/quiver-data/tls/cert.pem" \
      "$Q" bench produce --records 5000000 --producers 4 --partitions 4 --batch-size 1000 \
      --broker-pid "$pid" --json "${extra[@]}" | python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print('$mode', round(d['records_per_sec']/1e6,3), 'M/s client', round(d['client_cpu_us_per_record'],3), 'broker', round(d['broker_cpu_us_per_record'],3), 'p99', d['p99_ms'])"
    kill -TERM $pid; wait $pid 2>/dev/null || true
  done
done
rm -rf "$work"
