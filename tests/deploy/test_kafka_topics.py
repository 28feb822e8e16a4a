"""The production overlay declares every topic the contracts publish on, each with its DLQ."""

from __future__ import annotations

from pathlib import Path

import yaml

from churn_shared.contracts.registry import CONTRACTS_BY_TOPIC

TOPICS_YAML = Path(__file__).parents[2] / "k8s" / "overlays" / "production" / "kafkatopics.yaml"


def declared_topics() -> dict[str, dict[str, object]]:
    documents = [d for d in yaml.safe_load_all(TOPICS_YAML.read_text()) if d]
    assert all(d["kind"] == "KafkaTopic" for d in documents)
    return {d["spec"]["topicName"]: d["spec"] for d in documents}


def test_every_contract_topic_and_its_dead_letter_topic_is_declared() -> None:
    declared = declared_topics()
    missing = sorted(
        name
        for topic in CONTRACTS_BY_TOPIC
        for name in (topic, f"{topic}.dlq")
        if name not in declared
    )
    assert missing == []


def test_every_declared_topic_keeps_an_acknowledged_event_when_a_broker_is_lost() -> None:
    for name, spec in declared_topics().items():
        assert spec["replicas"] == 3, name
        assert spec["config"]["min.insync.replicas"] == 2, name  # type: ignore[index]
