#!/usr/bin/env python3
"""Create the platform's Kafka topics and their dead-letter topics, then exit (the topics job).

The topics are the ones the event contracts name (``churn_shared.contracts.registry``), each
with ``<topic>.dlq``. Settings, from the environment:

* ``CHURN_TOPICS_BOOTSTRAP_SERVERS`` (``kafka:9092``)
* ``CHURN_TOPICS_PARTITIONS`` (3): the most consumers of one group that can share a topic
* ``CHURN_TOPICS_REPLICATION_FACTOR`` (1 on one machine; 3 on a cluster)
* ``CHURN_TOPICS_RETENTION_MS`` (7 days) and ``CHURN_TOPICS_DLQ_RETENTION_MS`` (30 days)
* ``CHURN_TOPICS_WAIT_SECONDS`` (120): how long to wait for the broker

Existing topics are left as they are (a topic with fewer partitions than asked is reported).
"""

from __future__ import annotations

import asyncio
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from churn_shared.contracts import Topics
from churn_shared.contracts.registry import CONTRACTS_BY_TOPIC

_ALREADY_EXISTS = 36


def _env(name: str, default: str) -> str:
    return os.environ.get(f"CHURN_TOPICS_{name}", default)


def wanted() -> dict[str, dict[str, str]]:
    retention = _env("RETENTION_MS", str(7 * 24 * 3600 * 1000))
    dlq_retention = _env("DLQ_RETENTION_MS", str(30 * 24 * 3600 * 1000))
    topics: dict[str, dict[str, str]] = {}
    for topic in sorted(CONTRACTS_BY_TOPIC):
        topics[topic] = {"retention.ms": retention, "cleanup.policy": "delete"}
        topics[Topics.dead_letter(topic)] = {
            "retention.ms": dlq_retention,
            "cleanup.policy": "delete",
        }
    return topics


async def main() -> int:
    bootstrap = _env("BOOTSTRAP_SERVERS", "kafka:9092")
    partitions = int(_env("PARTITIONS", "3"))
    replication = int(_env("REPLICATION_FACTOR", "1"))
    deadline = asyncio.get_running_loop().time() + float(_env("WAIT_SECONDS", "120"))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="churn-topics")
    while True:
        try:
            await admin.start()
            break
        except Exception as exc:
            if asyncio.get_running_loop().time() > deadline:
                print(f"topics: broker {bootstrap} not reachable: {exc}", file=sys.stderr)
                return 1
            print(f"topics: waiting for {bootstrap} ({exc.__class__.__name__})", flush=True)
            await asyncio.sleep(2)
    try:
        topics = wanted()
        existing = set(await admin.list_topics())
        missing = [name for name in topics if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(name, partitions, replication, topic_configs=topics[name])
                    for name in missing
                ]
            )
            failed = [
                f"{topic}: {code} {message}"
                for topic, code, message in response.topic_errors
                if code not in (0, _ALREADY_EXISTS)
            ]
            if failed:
                print("topics: cannot create " + "; ".join(failed), file=sys.stderr)
                return 1
        if existing & set(topics):
            try:
                described = await admin.describe_topics(sorted(existing & set(topics)))
            except Exception as exc:  # informative only: never fail the job on it
                described = []
                print(f"topics: cannot describe the existing topics ({exc})")
            for topic in described:
                count = len(topic.get("partitions", []))
                if count and count < partitions:
                    print(f"topics: {topic.get('topic')} has {count} partitions (< {partitions})")
        print(
            f"topics: {len(topics)} topics ready on {bootstrap} ({len(missing)} created, "
            f"{partitions} partitions, replication {replication})",
            flush=True,
        )
        return 0
    finally:
        await admin.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
