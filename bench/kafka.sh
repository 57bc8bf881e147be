#!/usr/bin/env bash
# The Kafka listener driven by a real Kafka client: kcat (librdkafka)
# produces RECORDS (default 2,000,000) lines of 100 B to a 4-partition topic
# on a fresh default broker (fsync on), then consumes them from the
# beginning; records/s and CPU per record for kcat and for the broker.
# Then, each on a fresh broker in the same window, `quiver bench
# kafka-produce` (batches built ahead: the broker's Kafka path without a
# client library's per-record cost) followed by `quiver bench kafka-consume`
# of what it wrote (one consumer, full fetches), and `quiver bench produce`
# (QUIC), 5 M records of 100 B, 4 producers, 4 partitions, batches of
# 1,000. Last, `quiver bench kafka-produce --compression C` for each codec
# in CODECS (default: none gzip snappy lz4 zstd), 2 M records each on a
# fresh broker: records/s, CPU, and the bytes stored per record.
#
#   cargo build --release && bench/kafka.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RECORDS=${RECORDS:-2000000}

python3 -c "import sys; sys.stdout.buffer.write((b'x' * 99 + b'\n') * $RECORDS)" >"$work/records"
fresh_broker 7731 127.0.0.1:19094
"$QUIVER" topic create bench --partitions 4 >/dev/null

broker_cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
measure() {
    local name=$1; shift
    local b0 t0 t1 b1 client
    b0=$(broker_cpu); t0=$(date +%s.%N)
    /usr/bin/time -o "$work/time" -f '%U %S' "$@" >/dev/null 2>&1
    client=$(tail -1 "$work/time")
    t1=$(date +%s.%N); b1=$(broker_cpu)
    python3 - "$name" "$t0" "$t1" "$b0" "$b1" "$client" "$RECORDS" "$(getconf CLK_TCK)" <<'PY'
import sys
name, t0, t1, b0, b1, client, n, tck = sys.argv[1:]
n, secs = int(n), float(t1) - float(t0)
user, system = (float(x) for x in client.split())
print(f"{name}: {n / secs:,.0f} records/s; CPU per record: kcat {(user + system) / n * 1e6:.2f} us, "
      f"broker {(float(b1) - float(b0)) / int(tck) / n * 1e6:.2f} us")
PY
}
measure produce kcat -P -b 127.0.0.1:19094 -t bench -l "$work/records" -X linger.ms=5 \
    -X batch.num.messages=10000 -X batch.size=1000000 -X queue.buffering.max.messages=2000000 \
    -X queue.buffering.max.kbytes=2097151 -X acks=all
measure consume kcat -C -b 127.0.0.1:19094 -t bench -o beginning -e -q -f '%o\n' \
    -X fetch.max.bytes=52428800
stop_broker

# The broker's Kafka path with batches built ahead, then QUIC, each on a
# fresh broker.
for bench in kafka-produce produce; do
    fresh_broker 7731 127.0.0.1:19094
    extra=()
    [ "$bench" = kafka-produce ] && extra=(--kafka 127.0.0.1:19094 --keep)
    echo "$bench:"
    "$QUIVER" bench "$bench" --records 5000000 --producers 4 --partitions 4 \
        --batch-size 1000 --broker-pid "$pid" "${extra[@]}" | grep -v "^wrote"
    if [ "$bench" = kafka-produce ]; then
        # What it wrote, read back through the Kafka listener.
        echo "kafka-consume:"
        "$QUIVER" bench kafka-consume \
            --kafka 127.0.0.1:19094 --records 5000000 --broker-pid "$pid" | grep -v "^read"
    fi
    stop_broker
done

for codec in ${CODECS:-none gzip snappy lz4 zstd}; do
    fresh_broker 7731 127.0.0.1:19094
    echo "kafka-produce --compression $codec:"
    "$QUIVER" bench kafka-produce --kafka 127.0.0.1:19094 --records 2000000 \
        --producers 4 --partitions 4 --batch-size 1000 --compression "$codec" \
        --broker-pid "$pid" | grep -v "^wrote"
    stop_broker
done
