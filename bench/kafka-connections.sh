#!/usr/bin/env bash
# The Kafka listener's produce rate against the number of connections and
# the requests each has in flight: `quiver bench kafka-produce` (RECORDS,
# default 5 M, of 100 B, 4 partitions, one 1,000-record batch per request,
# acks=-1) with 4, 8 and 16 producers, each its own connection, with one
# request in flight (a client that waits for each answer) and with five
# (what Kafka clients pipeline by default); two rounds, each run on a fresh
# default broker (fsync on).
#
#   cargo build --release && bench/kafka-connections.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RECORDS=${RECORDS:-5000000}

for round in 1 2; do
    for run in 4:1 4:5 8:1 8:5 16:1 16:5; do
        producers=${run%:*}
        in_flight=${run#*:}
        fresh_broker 7751 127.0.0.1:19095
        "$QUIVER" bench kafka-produce --kafka 127.0.0.1:19095 --records "$RECORDS" \
            --producers "$producers" --in-flight "$in_flight" --partitions 4 \
            --batch-size 1000 --broker-pid "$pid" \
            --json | summary "$producers connections, $in_flight in flight (round $round)"
        stop_broker
    done
done
