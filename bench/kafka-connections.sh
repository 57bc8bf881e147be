#!/usr/bin/env bash
# The Kafka listener's produce rate against the number of connections:
# `quiver bench kafka-produce` (RECORDS, default 5 M, of 100 B, 4
# partitions, one 1,000-record batch per request, acks=-1) with 4, 8 and 16
# producers, each its own connection with one request in flight, two
# rounds, each run on a fresh default broker (fsync on).
#
#   cargo build --release && bench/kafka-connections.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RECORDS=${RECORDS:-5000000}

for producers in 4 8 16 4 8 16; do
    fresh_broker 7751 127.0.0.1:19095
    "$QUIVER" bench kafka-produce --kafka 127.0.0.1:19095 --records "$RECORDS" \
        --producers "$producers" --partitions 4 --batch-size 1000 --broker-pid "$pid" \
        --json | summary "$producers connections"
    stop_broker
done
