"""Digests on a real database with loopback receivers and a clock the test moves: the alerts a
digest-mode channel gets wait for its next digest time (local to the tenant), then leave as one
signed message listing them grouped by risk level, each with its console link."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from standardwebhooks import Webhook

from churn_alerts.rules import TenantScore
from churn_alerts.schemas import AlertChannelCreate, AlertRulesUpdate, QuietHoursWindow
from churn_alerts.service import AlertService, DigestService
from churn_alerts.worker import WebhookDeliveryWorker
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONSOLE = "https://console.example.com"

#: (customer, probability, previous): three high_risk alerts and two medium risk_increase ones.
FIVE = [
    ("c-1", 0.95, None),
    ("c-2", 0.8, None),
    ("c-3", 0.9, None),
    ("c-4", 0.55, 0.2),
    ("c-5", 0.5, 0.25),
]


async def _tenant(factory, *, timezone: str = "UTC", quiet: QuietHoursWindow | None = None) -> str:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    async with unit_of_work(factory) as session:
        await AlertService(session).update_rules(
            tenant_id,
            AlertRulesUpdate(
                high_risk_threshold=0.7,
                risk_increase_threshold=0.2,
                cooldown_minutes=0,
                timezone=timezone,
                quiet_hours=quiet,
            ),
        )
    return tenant_id


async def _channel(factory, tenant_id: str, now: datetime, **values: Any) -> Any:
    async with unit_of_work(factory) as session:
        return await AlertService(session).create_channel(
            tenant_id, AlertChannelCreate(**values), allow_internal_urls=True, now=now
        )


async def _raise(
    factory, tenant_id: str, now: datetime, scores: list[tuple[str, float, Any]]
) -> int:
    items = [
        TenantScore(
            tenant_id,
            ChurnScoreComputedV1(
                customer_id=customer,
                churn_probability=p,
                previous_probability=previous,
                risk_level="high" if p >= 0.7 else "medium",
                model_version="m-1",
                scored_at=now,
            ),
        )
        for customer, p, previous in scores
    ]
    async with unit_of_work(factory) as session:
        return (await AlertService(session).raise_alerts(items, now=now)).alerts


async def _assemble(factory, now: datetime) -> int:
    async with unit_of_work(factory) as session:
        return await DigestService(session).assemble_due(now)


def _worker(factory, make_settings, clock) -> WebhookDeliveryWorker:
    return WebhookDeliveryWorker(
        factory, make_settings(console_base_url=CONSOLE + "/"), clock=clock
    )


async def test_five_alerts_in_an_hour_leave_as_one_signed_digest_grouped_by_risk(
    session_factory, make_settings, webhook_receiver, clock
):
    tenant_id = await _tenant(session_factory)
    channel = await _channel(
        session_factory, tenant_id, NOON, url=webhook_receiver.url, delivery_mode="hourly"
    )
    assert channel.next_digest_at == NOON + timedelta(hours=1)
    worker = _worker(session_factory, make_settings, clock)
    for minutes, score in zip((5, 15, 25, 35, 50), FIVE, strict=True):
        assert (
            await _raise(session_factory, tenant_id, NOON + timedelta(minutes=minutes), [score])
            == 1
        )

    clock.now = NOON + timedelta(minutes=59)
    assert await _assemble(session_factory, clock.now) == 0
    assert await worker.deliver_once() == 0
    clock.now = NOON + timedelta(hours=1)
    assert await _assemble(session_factory, clock.now) == 1
    assert await worker.deliver_once() == 1
    clock.now = NOON + timedelta(hours=2)
    assert await _assemble(session_factory, clock.now) == 0  # nothing new: no message
    await worker.stop()

    [message] = webhook_receiver.received
    Webhook(channel.secret).verify(message["raw"], message["headers"])
    body = message["body"]
    assert body["event"] == "churn_alert_digest"
    assert body["alert_count"] == 5
    assert body["period_start"] == NOON.isoformat()
    assert body["period_end"] == (NOON + timedelta(hours=1)).isoformat()
    groups = {g["risk_level"]: g for g in body["groups"]}
    assert [g["risk_level"] for g in body["groups"]] == ["high", "medium"]
    assert [a["customer_id"] for a in groups["high"]["alerts"]] == ["c-1", "c-3", "c-2"]
    assert [a["customer_id"] for a in groups["medium"]["alerts"]] == ["c-4", "c-5"]
    assert groups["high"]["count"] == 3
    for alert in groups["high"]["alerts"] + groups["medium"]["alerts"]:
        assert alert["url"] == f"{CONSOLE}/alerts/{alert['id']}"


async def test_an_alert_lists_the_digest_it_went_out_in(
    session_factory, make_settings, webhook_receiver, clock
):
    tenant_id = await _tenant(session_factory)
    await _channel(
        session_factory, tenant_id, NOON, url=webhook_receiver.url, delivery_mode="hourly"
    )
    await _raise(session_factory, tenant_id, NOON + timedelta(minutes=5), FIVE[:1])
    clock.now = NOON + timedelta(hours=1)
    await _assemble(session_factory, clock.now)
    worker = _worker(session_factory, make_settings, clock)
    await worker.deliver_once()
    await worker.stop()

    alert_id = webhook_receiver.received[0]["body"]["groups"][0]["alerts"][0]["id"]
    async with session_factory() as session:
        deliveries = await AlertService(session).deliveries_of(tenant_id, alert_id)
    [delivery] = deliveries.items
    assert delivery.digest_id is not None
    assert delivery.status == "delivered"
    assert len(delivery.attempts) == 1


async def test_a_daily_slack_digest_leaves_at_the_local_hour(
    session_factory, make_settings, webhook_receiver, clock
):
    tenant_id = await _tenant(session_factory, timezone="Europe/Berlin")
    channel = await _channel(
        session_factory,
        tenant_id,
        NOON,
        kind="slack",
        url=webhook_receiver.url,
        delivery_mode="daily",
        digest_hour=8,
    )
    morning = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
    assert channel.next_digest_at == morning
    await _raise(session_factory, tenant_id, NOON + timedelta(hours=3), FIVE)
    worker = _worker(session_factory, make_settings, clock)

    assert await _assemble(session_factory, morning - timedelta(minutes=1)) == 0
    clock.now = morning
    assert await _assemble(session_factory, morning) == 1
    assert await worker.deliver_once() == 1
    await worker.stop()

    [message] = webhook_receiver.received
    body = message["body"]
    assert body["text"] == "Churn alert digest: 5 new alerts"
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert sections[1].startswith("*High risk (3)*")
    assert sections[2].startswith("*Medium risk (2)*")
    assert f"<{CONSOLE}/alerts/" in sections[1]
    assert "|c-1>" in sections[1]


async def test_immediate_channels_are_unchanged_beside_a_digest_channel(
    session_factory, make_settings, webhook_receiver, slow_webhook_receiver, clock
):
    tenant_id = await _tenant(session_factory)
    immediate = slow_webhook_receiver(0.0)
    await _channel(session_factory, tenant_id, NOON, url=immediate.url)
    await _channel(
        session_factory, tenant_id, NOON, url=webhook_receiver.url, delivery_mode="hourly"
    )
    clock.now = NOON + timedelta(minutes=5)
    await _raise(session_factory, tenant_id, clock.now, FIVE[:2])
    worker = _worker(session_factory, make_settings, clock)

    assert await worker.deliver_once() == 2
    await worker.stop()

    assert sorted(r["body"]["customer_id"] for r in immediate.received) == ["c-1", "c-2"]
    assert webhook_receiver.received == []


async def test_a_digest_due_in_quiet_hours_waits_for_their_end(
    session_factory, make_settings, webhook_receiver, clock
):
    quiet = QuietHoursWindow(start=time(22, 0), end=time(7, 0))
    tenant_id = await _tenant(session_factory, timezone="Europe/Berlin", quiet=quiet)
    await _channel(
        session_factory, tenant_id, NOON, url=webhook_receiver.url, delivery_mode="hourly"
    )
    late = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)  # 23:00 in Berlin
    await _raise(session_factory, tenant_id, late - timedelta(minutes=30), FIVE[:1])
    worker = _worker(session_factory, make_settings, clock)

    clock.now = late
    assert await _assemble(session_factory, late) == 1
    assert await worker.deliver_once() == 0
    clock.now = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
    assert await worker.deliver_once() == 1
    await worker.stop()
    assert webhook_receiver.received[0]["body"]["alert_count"] == 1
