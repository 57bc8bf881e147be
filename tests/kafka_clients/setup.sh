#!/usr/bin/env bash
# Installs the Kafka clients the end-to-end tests drive: kcat (librdkafka,
# from Debian) and a Python virtual environment with confluent-kafka and
# kafka-python (from PyPI) in target/kafka-clients. Does nothing that is
# already done.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"

if ! command -v kcat >/dev/null; then
    apt-get install -y kcat || { apt-get update && apt-get install -y kcat; }
fi

venv="$root/target/kafka-clients"
if ! "$venv/bin/python" -c 'import confluent_kafka, kafka' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --requirement requirements.txt
fi
