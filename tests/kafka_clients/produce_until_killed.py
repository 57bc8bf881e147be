"""An idempotent confluent-kafka producer with acks=all writes numbered
records and prints "acked N" for each record the broker acknowledged, as
the acknowledgements come, until it has sent them all or the broker is gone
(the test kills it meanwhile). What is printed must survive the kill."""

import sys

from confluent_kafka import Producer

from common import broker

TOTAL = 20_000

producer = Producer({
    "bootstrap.servers": broker(),
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 5,
    # Give up on what the dead broker never acknowledged soon.
    "message.timeout.ms": 5000,
})


def delivered(error, message):
    if error is None:
        print(f"acked {message.value().decode()}", flush=True)


for i in range(TOTAL):
    while True:
        try:
            producer.produce("ledger", key=f"account{i % 7}", value=str(i), on_delivery=delivered)
            break
        except BufferError:
            producer.poll(0.05)
    producer.poll(0)
producer.flush(10)
sys.exit(0)
