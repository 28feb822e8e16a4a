"""churn.scores.v1 → alerts → churn.alerts.v1 and signed webhooks, on a real broker and database."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from churn_alerts.main import create_app
from churn_alerts.models import Delivery, processed_events
from churn_alerts.signing import verify_signature_header
from churn_shared.contracts import ChurnScoreComputedV1, Driver, Topics
from churn_shared.db import utcnow
from churn_shared.kafka import Envelope, EventPublisher
from testkit import wait_for


def _envelope(
    tenant_id: str,
    customer_id: str,
    p: float,
    previous: float | None = None,
    *,
    backfill: bool = False,
    event_id: str | None = None,
) -> Envelope:
    return Envelope.wrap(
        tenant_id=tenant_id,
        producer="prediction",
        key=customer_id,
        event_id=event_id,
        payload=ChurnScoreComputedV1(
            customer_id=customer_id,
            churn_probability=p,
            previous_probability=previous,
            risk_level="high" if p >= 0.7 else "medium" if p >= 0.4 else "low",
            model_version="m-test",
            scored_at=utcnow(),
            backfill=backfill,
            drivers=[
                Driver(
                    feature="days_since_last_order",
                    value=120.0,
                    contribution=1.2,
                    direction="increases_risk",
                )
            ],
        ),
    )


@pytest.fixture
async def publish(kafka_bootstrap):
    publisher = EventPublisher(kafka_bootstrap, client_id="alerts-test", linger_ms=0)
    await publisher.start()

    async def send(*envelopes: Envelope) -> None:
        await publisher.publish(Topics.CHURN_SCORES, list(envelopes))

    yield send
    await publisher.stop()


async def _alerts(client, tenant, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/alerts", headers=tenant["headers"], params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _processed(app, event_id: str) -> bool:
    async with app.state.engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(processed_events)
            .where(processed_events.c.event_id == event_id)
        )
    return bool(found)


async def _deliveries(app, alert_id: str) -> list[Delivery]:
    async with app.state.session_factory() as session:
        result = await session.exec(sa.select(Delivery).where(Delivery.alert_id == alert_id))
        return list(result.scalars().all())


async def _alerts_on_topic(bootstrap: str, tenant_id: str, count: int) -> list[Envelope]:
    consumer = AIOKafkaConsumer(
        Topics.CHURN_ALERTS,
        bootstrap_servers=bootstrap,
        group_id=uuid.uuid4().hex,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    found: list[Envelope] = []
    try:
        async with asyncio.timeout(30):
            while len(found) < count:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        env = Envelope.from_bytes(record.value)
                        if env.tenant_id == tenant_id:
                            found.append(env)
    finally:
        await consumer.stop()
    return found


@pytest.fixture
def app(make_settings, token_signer):
    return create_app(make_settings(), token_verifier=token_signer.verifier())


async def _add_channel(client, tenant, url: str, kind: str = "webhook") -> dict[str, Any]:
    response = await client.post(
        "/v1/alert-channels", headers=tenant["headers"], json={"kind": kind, "url": url}
    )
    assert response.status_code == 201, response.text
    channel: dict[str, Any] = response.json()
    return channel


async def test_high_score_raises_alert_event_and_signed_webhook(
    app, in_process, tenant, publish, webhook_receiver, kafka_bootstrap
):
    async with in_process(app) as client:
        channel = await _add_channel(client, tenant, webhook_receiver.url)
        await publish(_envelope(tenant["id"], "c-risky", 0.91))

        alerts = await wait_for(lambda: _alerts(client, tenant), timeout=60)
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert["customer_id"] == "c-risky"
        assert alert["kind"] == "high_risk"
        assert alert["churn_probability"] == pytest.approx(0.91)
        assert alert["risk_level"] == "high"
        assert alert["model_version"] == "m-test"
        assert alert["status"] == "open"
        assert alert["drivers"][0]["feature"] == "days_since_last_order"

        raised = await _alerts_on_topic(kafka_bootstrap, tenant["id"], 1)
        assert raised[0].event_type == "ChurnAlertRaisedV1"
        assert raised[0].key == "c-risky"
        assert raised[0].payload["alert_id"] == alert["id"]
        assert raised[0].payload["kind"] == "high_risk"

        hooks = await wait_for(lambda: webhook_receiver.received, timeout=15)
        hook = hooks[0]
        assert hook["path"] == "/hooks/churn"
        assert hook["headers"]["X-Churn-Event"] == "churn_alert"
        assert verify_signature_header(
            channel["secret"],
            hook["headers"]["X-Churn-Signature"],
            hook["raw"],
            now=int(time.time()),
        )
        assert hook["body"]["id"] == alert["id"]
        assert hook["body"]["customer_id"] == "c-risky"
        assert hook["body"]["kind"] == "high_risk"

        deliveries = await wait_for(lambda: _delivered(app, alert["id"]), timeout=10)
        assert hook["headers"]["X-Churn-Delivery"] == deliveries[0].id
        assert deliveries[0].attempts == 1


async def test_slack_and_discord_channels_get_their_own_message_format(
    app, in_process, tenant, publish, webhook_receiver
):
    """In development mode a local receiver stands in for Slack's and Discord's webhook hosts."""
    async with in_process(app) as client:
        await _add_channel(client, tenant, webhook_receiver.url + "/slack", kind="slack")
        await _add_channel(client, tenant, webhook_receiver.url + "/discord", kind="discord")
        await publish(_envelope(tenant["id"], "c-chatty", 0.93))
        hooks = await wait_for(
            lambda: webhook_receiver.received if len(webhook_receiver.received) >= 2 else None,
            timeout=60,
        )
    by_path = {hook["path"]: hook["body"] for hook in hooks}
    slack = by_path["/hooks/churn/slack"]
    assert slack["text"] == "High churn risk: customer c-chatty at 93% (high risk)"
    assert any("days_since_last_order" in str(block) for block in slack["blocks"])
    discord = by_path["/hooks/churn/discord"]
    assert discord["allowed_mentions"] == {"parse": []}
    assert discord["embeds"][0]["title"].startswith("High churn risk: customer c-chatty")


async def _delivered(app, alert_id: str) -> list[Delivery]:
    rows = await _deliveries(app, alert_id)
    return rows if rows and all(d.status == "delivered" for d in rows) else []


async def test_same_score_again_inside_cooldown_raises_nothing(app, in_process, tenant, publish):
    async with in_process(app) as client:
        await publish(_envelope(tenant["id"], "c1", 0.8))
        await wait_for(lambda: _alerts(client, tenant), timeout=60)
        again = _envelope(tenant["id"], "c1", 0.85)
        await publish(again)
        await wait_for(lambda: _processed(app, again.event_id), timeout=60)
        alerts = await _alerts(client, tenant)
    assert [(a["customer_id"], a["kind"]) for a in alerts] == [("c1", "high_risk")]


async def test_redelivered_event_is_applied_once(app, in_process, tenant, publish):
    env = _envelope(tenant["id"], "c1", 0.8)
    async with in_process(app) as client:
        # A cooldown of zero: only idempotency can stop the second copy.
        await client.put(
            "/v1/alert-rules",
            headers=tenant["headers"],
            json={
                "high_risk_threshold": 0.7,
                "risk_increase_threshold": 0.2,
                "cooldown_minutes": 0,
            },
        )
        await publish(env)
        await publish(env)
        # Same key, so it is consumed after both copies; another kind, so no in-batch dedupe.
        marker = _envelope(tenant["id"], "c1", 0.5, previous=0.1)
        await publish(marker)
        await wait_for(lambda: _processed(app, marker.event_id), timeout=60)
        alerts = await _alerts(client, tenant)
    assert sorted((a["kind"], a["churn_probability"]) for a in alerts) == [
        ("high_risk", 0.8),
        ("risk_increase", 0.5),
    ]


async def test_risk_increase_is_raised(app, in_process, tenant, publish):
    async with in_process(app) as client:
        await publish(_envelope(tenant["id"], "c2", 0.55, previous=0.3))
        alerts = await wait_for(lambda: _alerts(client, tenant), timeout=60)
    assert [(a["kind"], a["previous_probability"]) for a in alerts] == [("risk_increase", 0.3)]


async def test_backfill_scores_raise_nothing(app, in_process, tenant, publish):
    async with in_process(app) as client:
        backfill = _envelope(tenant["id"], "c3", 0.99, previous=0.1, backfill=True)
        await publish(backfill)
        await wait_for(lambda: _processed(app, backfill.event_id), timeout=60)
        assert await _alerts(client, tenant) == []


async def test_stored_rules_are_applied(app, in_process, tenant, publish):
    async with in_process(app) as client:
        await client.put(
            "/v1/alert-rules",
            headers=tenant["headers"],
            json={
                "high_risk_threshold": 0.95,
                "risk_increase_threshold": 0.5,
                "cooldown_minutes": 60,
            },
        )
        quiet = _envelope(tenant["id"], "c4", 0.9, previous=0.6)
        await publish(quiet)
        await wait_for(lambda: _processed(app, quiet.event_id), timeout=60)
        assert await _alerts(client, tenant) == []


async def test_failing_webhook_is_retried_until_delivered(
    app, in_process, tenant, publish, flaky_webhook_receiver
):
    async with in_process(app) as client:
        await _add_channel(client, tenant, flaky_webhook_receiver.url)
        await publish(_envelope(tenant["id"], "c5", 0.9))
        alert = (await wait_for(lambda: _alerts(client, tenant), timeout=60))[0]
        deliveries = await wait_for(lambda: _delivered(app, alert["id"]), timeout=60)
    assert deliveries[0].attempts == 3
    assert deliveries[0].delivered_at is not None
    attempts = flaky_webhook_receiver.received
    assert len(attempts) == 3
    assert {a["headers"]["X-Churn-Delivery"] for a in attempts} == {deliveries[0].id}


async def test_webhook_that_keeps_failing_ends_dead(
    make_settings, token_signer, in_process, tenant, publish, broken_webhook_receiver
):
    app = create_app(make_settings(max_delivery_attempts=2), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        await _add_channel(client, tenant, broken_webhook_receiver.url)
        await publish(_envelope(tenant["id"], "c6", 0.9))
        alert = (await wait_for(lambda: _alerts(client, tenant), timeout=60))[0]

        async def dead() -> list[Delivery]:
            rows = await _deliveries(app, alert["id"])
            return rows if rows and rows[0].status == "dead" else []

        deliveries = await wait_for(dead, timeout=60)
    assert deliveries[0].attempts == 2
    assert deliveries[0].last_error == "HTTP 500"
    assert len(broken_webhook_receiver.received) == 2
