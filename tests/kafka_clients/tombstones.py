"""confluent-kafka (librdkafka) writes and reads null values (tombstones),
which are not empty values.

Arguments: BROKER produce TOPIC, or BROKER read TOPIC COUNT.
- produce: writes six records, in order, and checks each is acknowledged:
  a click for user-1, a tombstone for user-1, an empty value for user-2,
  an upload for user-2, a tombstone for user-3, an unkeyed click.
- read: reads COUNT records of TOPIC from the beginning and prints each as
  a JSON line {"key", "value"}, a null key or value as null.
"""

import json
import sys
import uuid

from confluent_kafka import Consumer, Producer

from common import broker, check, poll_until

mode, topic = sys.argv[2], sys.argv[3]

if mode == "produce":
    records = [
        ("user-1", json.dumps({"action": "click", "page": "/a"})),
        ("user-1", None),
        ("user-2", b""),
        ("user-2", json.dumps({"action": "upload", "page": "/b"})),
        ("user-3", None),
        (None, json.dumps({"action": "click", "page": "/c"})),
    ]
    producer = Producer({"bootstrap.servers": broker(), "acks": "all"})
    acknowledged = []

    def delivered(error, message):
        check(error is None, f"delivery failed: {error}")
        acknowledged.append(message.offset())

    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=delivered)
        # One at a time, so the offsets follow the order above.
        check(producer.flush(30) == 0, "delivered")
    check(len(acknowledged) == len(records), f"{len(acknowledged)} acknowledged")
elif mode == "read":
    count = int(sys.argv[4])
    consumer = Consumer(
        {
            "bootstrap.servers": broker(),
            "group.id": f"tombstones-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    records = poll_until(consumer, count)
    consumer.close()
    check(len(records) == count, f"{len(records)} of {count} records read")
    decode = lambda b: None if b is None else b.decode()
    for _partition, _offset, key, value in sorted(records, key=lambda r: (r[0], r[1])):
        print(json.dumps({"key": decode(key), "value": decode(value)}))
else:
    check(False, f"unknown mode {mode}")
