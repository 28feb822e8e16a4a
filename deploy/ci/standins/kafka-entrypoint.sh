#!/bin/bash
# Start Tansu where the compose file expects Kafka: PLAINTEXT listener of KAFKA_LISTENERS
# (default :9092) advertised as KAFKA_ADVERTISED_LISTENERS. The controller/KRaft settings are
# Kafka's own and have no meaning for Tansu.
set -euo pipefail
advertised="${KAFKA_ADVERTISED_LISTENERS:-PLAINTEXT://localhost:9092}"
advertised="${advertised%%,*}"
advertised="tcp://${advertised#*://}"
port="${advertised##*:}"
exec /opt/tansu/bin/tansu broker --listener-url "tcp://0.0.0.0:${port}" --advertised-listener-url "$advertised"
