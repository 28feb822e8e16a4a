"""Quiet hours on a real database with a loopback receiver and a clock the test moves: alerts
raised inside the tenant's window are stored and published at once; their deliveries leave when
the window ends, never inside it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from sqlmodel import select

from churn_alerts.models import Alert, AlertChannel, Delivery, outbox
from churn_alerts.rules import TenantScore
from churn_alerts.schemas import AlertRulesUpdate, QuietHoursWindow
from churn_alerts.service import AlertService
from churn_alerts.signing import new_secret
from churn_alerts.worker import WebhookDeliveryWorker
from churn_shared.contracts import ChurnAlertRaisedV1, ChurnScoreComputedV1
from churn_shared.db import unit_of_work

#: 23:30 in Berlin (CET, UTC+1); the window ends at 07:00 Berlin, 06:00 UTC.
LATE_EVENING = datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
MORNING = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


async def _tenant(factory, url: str) -> str:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    async with unit_of_work(factory) as session:
        service = AlertService(session)
        await service.update_rules(
            tenant_id,
            AlertRulesUpdate(
                high_risk_threshold=0.7,
                risk_increase_threshold=0.2,
                cooldown_minutes=0,
                timezone="Europe/Berlin",
                quiet_hours=QuietHoursWindow(start=time(22, 0), end=time(7, 0)),
            ),
        )
        session.add(
            AlertChannel(
                tenant_id=tenant_id, kind="webhook", name="hook", url=url, secret=new_secret()
            )
        )
    return tenant_id


async def _raise(factory, tenant_id: str, now: datetime, customer: str = "c-1") -> None:
    score = ChurnScoreComputedV1(
        customer_id=customer,
        churn_probability=0.9,
        risk_level="high",
        model_version="m-1",
        scored_at=now,
    )
    async with unit_of_work(factory) as session:
        await AlertService(session).raise_alerts([TenantScore(tenant_id, score)], now=now)


async def test_an_alert_raised_in_quiet_hours_is_held_until_the_window_ends(
    session_factory, make_settings, webhook_receiver, clock
):
    tenant_id = await _tenant(session_factory, webhook_receiver.url)
    clock.now = LATE_EVENING
    await _raise(session_factory, tenant_id, clock.now)
    worker = WebhookDeliveryWorker(session_factory, make_settings(), clock=clock)

    # At once: the alert is in the inbox and its event is in the outbox (the live feed) ...
    async with session_factory() as session:
        alert = (await session.exec(select(Alert).where(Alert.tenant_id == tenant_id))).one()
        delivery = (
            await session.exec(select(Delivery).where(Delivery.tenant_id == tenant_id))
        ).one()
        events = (
            await session.exec(
                sa.select(outbox.c.payload).where(outbox.c.topic == ChurnAlertRaisedV1.topic)
            )
        ).all()
    assert any(alert.id in str(payload) for (payload,) in events)
    # ... but its delivery waits for the end of the window.
    assert delivery.status == "pending"
    assert delivery.next_attempt_at == MORNING

    for minutes in (0, 60, 6 * 60, 7 * 60 + 29):
        clock.now = LATE_EVENING + timedelta(minutes=minutes)
        assert await worker.deliver_once() == 0
    assert webhook_receiver.received == []

    clock.now = MORNING
    assert await worker.deliver_once() == 1
    assert [r["body"]["id"] for r in webhook_receiver.received] == [alert.id]
    await worker.stop()


async def test_outside_quiet_hours_deliveries_leave_at_once(
    session_factory, make_settings, webhook_receiver, clock
):
    tenant_id = await _tenant(session_factory, webhook_receiver.url)
    clock.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    await _raise(session_factory, tenant_id, clock.now)
    worker = WebhookDeliveryWorker(session_factory, make_settings(), clock=clock)

    assert await worker.deliver_once() == 1
    assert len(webhook_receiver.received) == 1
    await worker.stop()


async def test_a_retry_falling_in_quiet_hours_waits_too(
    session_factory, make_settings, broken_webhook_receiver, clock
):
    tenant_id = await _tenant(session_factory, broken_webhook_receiver.url)
    clock.now = datetime(2026, 12, 1, 20, 59, tzinfo=UTC)  # 21:59 Berlin
    await _raise(session_factory, tenant_id, clock.now)
    worker = WebhookDeliveryWorker(session_factory, make_settings(), clock=clock)
    assert await worker.deliver_once() == 1  # answered 500: retried after a backoff

    clock.now = LATE_EVENING
    assert await worker.deliver_once() == 0
    async with session_factory() as session:
        delivery = (
            await session.exec(select(Delivery).where(Delivery.tenant_id == tenant_id))
        ).one()
    assert delivery.attempts == 1
    assert delivery.next_attempt_at == MORNING
    assert len(broken_webhook_receiver.received) == 1
    await worker.stop()
