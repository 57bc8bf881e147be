#!/usr/bin/env bash
# What the SDK producer's idempotence costs: `quiver bench produce` (RECORDS,
# default 5 M, of 100 B, 4 producers, 4 partitions, batches of 1,000) with
# and without `--no-idempotence`, alternating, three rounds, each run on a
# fresh default broker (fsync on): records/s, CPU per record, request p99.
#
#   cargo build --release && bench/idempotence.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RECORDS=${RECORDS:-5000000}

for round in 1 2 3; do
    for mode in idempotent plain; do
        fresh_broker 7741 off
        extra=()
        [ "$mode" = plain ] && extra=(--no-idempotence)
        "$QUIVER" bench produce --records "$RECORDS" --producers 4 --partitions 4 \
            --batch-size 1000 --broker-pid "$pid" --json "${extra[@]}" | summary "$mode"
        stop_broker
    done
done
