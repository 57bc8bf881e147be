"""Helpers shared by the client scripts: the broker address from argv,
and a check that fails the script with a message."""

import sys
import time


def broker():
    return sys.argv[1]


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def poll_until(consumer, want, seconds=30):
    """Polls `consumer` until `want` records came or `seconds` passed;
    returns the records as (partition, offset, key, value)."""
    records = []
    deadline = time.time() + seconds
    while len(records) < want and time.time() < deadline:
        message = consumer.poll(0.2)
        if message is None:
            continue
        check(message.error() is None, f"consumer error: {message.error()}")
        records.append((message.partition(), message.offset(), message.key(), message.value()))
    return records
