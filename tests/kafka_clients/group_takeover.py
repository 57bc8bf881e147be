"""Two confluent-kafka consumers in one group share a topic's partitions
without duplicates; when one leaves, the other takes its partitions over
from the committed offsets: every record is read, none twice. The group
speaks the classic protocol, or KIP-848's with a second argument
`consumer` (`group.protocol=consumer`: the broker assigns)."""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common import broker, check, poll_until

TOPIC, GROUP = "clicks", "dashboards"
PROTOCOL = sys.argv[2] if len(sys.argv) > 2 else "classic"

admin = AdminClient({"bootstrap.servers": broker()})
for future in admin.create_topics([NewTopic(TOPIC, 4, 1)]).values():
    future.result()
producer = Producer({"bootstrap.servers": broker(), "enable.idempotence": True})


def produce(start, count):
    for i in range(start, start + count):
        producer.produce(TOPIC, key=f"user{i % 10}", value=f"click {i}")
    check(producer.flush(10) == 0, "every record delivered")


def consumer(name):
    config = {
        "bootstrap.servers": broker(),
        "group.id": GROUP,
        "client.id": name,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "group.protocol": PROTOCOL,
    }
    if PROTOCOL == "classic":
        # With KIP-848 the broker sets these.
        config.update({"session.timeout.ms": 6000, "heartbeat.interval.ms": 300})
    return Consumer(config)


def commit_before_giving_up(consumer, partitions):
    # What a consumer read of the partitions it hands over is committed
    # first, so that their next owner goes on from there.
    try:
        consumer.commit(asynchronous=False)
    except KafkaException:
        pass  # nothing read yet


produce(0, 100)
first, second = consumer("first"), consumer("second")
first.subscribe([TOPIC], on_revoke=commit_before_giving_up)
second.subscribe([TOPIC], on_revoke=commit_before_giving_up)
read = {}
while len(read) < 100:
    got = poll_until(first, 1, 0.5) + poll_until(second, 1, 0.5)
    for partition, offset, _, value in got:
        check((partition, offset) not in read, f"record {partition}/{offset} read twice")
        read[(partition, offset)] = value
mine = {tp.partition for tp in first.assignment()}
theirs = {tp.partition for tp in second.assignment()}
check(mine and theirs and not mine & theirs and mine | theirs == {0, 1, 2, 3},
      f"partitions split between the two: {mine} and {theirs}")
first.commit(asynchronous=False)
second.commit(asynchronous=False)

# The second leaves; once the first has taken every partition over (from
# the committed offsets), it reads only what comes after. (Records it read
# but had not committed when a rebalance began would be read again, as in
# Kafka: at least once; so nothing is produced during the hand-over.)
second.close()
deadline = time.time() + 30
while {tp.partition for tp in first.assignment()} != {0, 1, 2, 3} and time.time() < deadline:
    check(not poll_until(first, 1, 0.2), "nothing new to read during the hand-over")
produce(100, 40)
later = poll_until(first, 40, 30)
for partition, offset, _, value in later:
    check((partition, offset) not in read, f"record {partition}/{offset} read again after the takeover")
    read[(partition, offset)] = value
check(len(read) == 140, f"{len(read)} of 140 records read")
check({tp.partition for tp in first.assignment()} == {0, 1, 2, 3}, "the first took every partition")
first.commit(asynchronous=False)
first.close()
print(len(read))
