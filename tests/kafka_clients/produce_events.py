"""kafka-python writes the seed's click and upload events, keyed by user
id, to a topic (created on first use); prints how many were acknowledged."""

import json

from kafka import KafkaProducer

from common import broker, check

TOPIC = "events"
USERS = ["alice", "bob", "carol", "dave", "erin"]

producer = KafkaProducer(bootstrap_servers=broker(), acks="all")
futures = []
for i in range(50):
    user = USERS[i % len(USERS)]
    kind = "upload" if i % 5 == 0 else "click"
    event = {"user": user, "action": kind, "page": f"/page/{i}"}
    futures.append(producer.send(TOPIC, key=user.encode(), value=json.dumps(event).encode()))
producer.flush()
acknowledged = [f.get(timeout=10) for f in futures]
check(len(acknowledged) == 50, "every event acknowledged")
print(len(acknowledged))
