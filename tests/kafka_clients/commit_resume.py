"""kafka-python reads part of a topic in a group, commits and closes; a new
consumer in the same group resumes from the committed offset."""

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from common import broker, check

TOPIC, GROUP = "uploads", "archiver"

producer = KafkaProducer(bootstrap_servers=broker(), acks="all")
for i in range(30):
    producer.send(TOPIC, key=b"user", value=f"upload {i}".encode())
producer.flush()


def consumer():
    return KafkaConsumer(
        TOPIC,
        bootstrap_servers=broker(),
        group_id=GROUP,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=300,
    )


def read(consumer, count):
    values = []
    while len(values) < count:
        batches = consumer.poll(timeout_ms=10000, max_records=count - len(values))
        check(batches, "records arrive")
        for records in batches.values():
            values.extend(r.value.decode() for r in records)
    return values


first = consumer()
head = read(first, 10)
check(head == [f"upload {i}" for i in range(10)], f"the first ten in order: {head}")
first.commit()
first.close()

second = consumer()
rest = read(second, 20)
check(rest == [f"upload {i}" for i in range(10, 30)], f"resumed at the committed offset: {rest[:3]}")
second.commit()
committed = second.committed(TopicPartition(TOPIC, 0))
check(committed == 30, f"committed offset {committed}")
second.close()
print(len(head) + len(rest))
