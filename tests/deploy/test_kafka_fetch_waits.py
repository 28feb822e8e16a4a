"""Deployments on Apache Kafka let the broker hold an empty fetch long.

Apache Kafka answers a fetch as soon as it has a message (``fetch.min.bytes`` = 1), so a long
``fetch.max.wait.ms`` costs no latency there, and spares it a fetch every few milliseconds from
each idle consumer. The services' defaults are short because the embedded broker (Tansu) does
not answer a held fetch early; compose and the Kubernetes ConfigMap run Apache Kafka and must
override them for every component that talks to it."""

from __future__ import annotations

from pathlib import Path

import yaml

from churn_shared.settings import ServiceSettings

ROOT = Path(__file__).parents[2]
LONG_WAIT_MS = 500
WAITS = ("KAFKA_FETCH_MAX_WAIT_MS", "KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS")


def kafka_components(env: dict[str, str]) -> list[str]:
    return sorted(
        name.removesuffix("KAFKA_BOOTSTRAP_SERVERS")
        for name in env
        if name.startswith("CHURN_") and name.endswith("_KAFKA_BOOTSTRAP_SERVERS")
    )


def short_waits(env: dict[str, str]) -> list[str]:
    """The ``prefix + wait`` variables missing or shorter than :data:`LONG_WAIT_MS`."""
    return [
        prefix + wait
        for prefix in kafka_components(env)
        for wait in WAITS
        if int(env.get(prefix + wait, 0)) < LONG_WAIT_MS
    ]


def test_every_compose_service_on_kafka_waits_long() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    checked = 0
    for name, service in compose["services"].items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        if not kafka_components(env):
            continue
        checked += 1
        assert short_waits(env) == [], name
    # auth, customers, customers-worker, prediction, alerts, alerts-worker, gateway
    assert checked >= 7


def test_the_kubernetes_configmap_sets_long_waits_for_every_component() -> None:
    configmap = yaml.safe_load((ROOT / "k8s" / "base" / "configmap.yaml").read_text())
    env = {k: str(v) for k, v in configmap["data"].items()}
    assert len(kafka_components(env)) == 5
    assert short_waits(env) == []


def test_the_embedded_defaults_stay_short() -> None:
    """Against the embedded broker a long wait would be a hop's latency: the defaults are the
    short ones the overrides above replace."""
    defaults = ServiceSettings()
    assert defaults.kafka_fetch_max_wait_ms < LONG_WAIT_MS
    assert defaults.kafka_background_fetch_max_wait_ms < LONG_WAIT_MS
