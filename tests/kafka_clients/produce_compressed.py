"""confluent-kafka (librdkafka) writes the seed's click and upload events,
keyed by user id, with its producer's compression.type set to CODEC; prints
each acknowledged event as a JSON line.

Arguments: BROKER TOPIC CODEC FIRST COUNT. Event i (FIRST <= i <
FIRST+COUNT) happens at BASE_TS + 150 ms * i plus some jitter, so runs with
consecutive ranges stay in event-time order."""

import json
import random
import sys

from confluent_kafka import Producer

from common import broker, check

BASE_TS = 1_700_000_000_000
topic, codec, first, count = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
rng = random.Random(first)

producer = Producer(
    {
        "bootstrap.servers": broker(),
        "compression.type": codec,
        # Let batches fill, so that each holds many records to compress.
        "linger.ms": 50,
        "acks": "all",
    }
)
acknowledged = []


def delivered(error, message):
    check(error is None, f"delivery failed: {error}")
    acknowledged.append(message.value().decode())


for i in range(first, first + count):
    user = rng.randrange(50)
    event = {
        "user_id": user,
        "page": f"/p{rng.randrange(8)}",
        "action": "upload" if rng.randrange(4) == 0 else "click",
        "ts": BASE_TS + i * 150 + rng.randrange(100),
    }
    producer.produce(topic, key=f"user-{user}", value=json.dumps(event), on_delivery=delivered)
check(producer.flush(30) == 0, "every event delivered")
check(len(acknowledged) == count, f"{len(acknowledged)} of {count} acknowledged")
for value in acknowledged:
    print(value)
