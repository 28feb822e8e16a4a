"""Scores → alerts through the alert service on in-memory repositories: the tenant's rules, the
cooldown, one alert per customer and kind in a batch, and what each raised alert leaves behind
(history, deliveries, the outbox); then one lifecycle change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from churn_alerts.exceptions import InvalidTransitionError
from churn_alerts.models import AlertRule
from churn_alerts.rules import TenantScore
from churn_alerts.service import Change
from churn_shared.contracts import ChurnAlertRaisedV1, ChurnAlertUpdatedV1, ChurnScoreComputedV1

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TENANT = "t-1"


def score(
    customer_id: str = "c1",
    probability: float = 0.9,
    previous: float | None = None,
    *,
    tenant_id: str = TENANT,
    backfill: bool = False,
) -> TenantScore:
    return TenantScore(
        tenant_id,
        ChurnScoreComputedV1(
            customer_id=customer_id,
            churn_probability=probability,
            previous_probability=previous,
            risk_level="high" if probability >= 0.7 else "low",
            model_version="m-1",
            scored_at=NOW,
            backfill=backfill,
        ),
    )


def raised_events(uow) -> list[ChurnAlertRaisedV1]:
    return [
        ChurnAlertRaisedV1.model_validate(e.payload)
        for e in uow.session.outbox(ChurnAlertRaisedV1.topic)
        if e.event_type == ChurnAlertRaisedV1.event_type
    ]


async def test_a_high_score_raises_an_open_high_risk_alert(alert_service, uow):
    async with uow:
        outcome = await alert_service.raise_alerts([score(probability=0.9)], now=NOW)

    (alert,) = uow.alerts.rows.values()
    assert (outcome.alerts, alert.kind, alert.status) == (1, "high_risk", "open")
    assert (alert.customer_id, alert.created_at) == ("c1", NOW)
    assert [(h.alert_id, h.action, h.to_status) for h in uow.history.rows] == [
        (alert.id, "raised", "open")
    ]
    assert uow.commits == 1


async def test_each_raised_alert_is_published_through_the_outbox(alert_service, uow):
    await alert_service.raise_alerts([score("c1"), score("c2")], now=NOW)

    events = raised_events(uow)
    assert sorted(e.customer_id for e in events) == ["c1", "c2"]
    assert {e.alert_id for e in events} == set(uow.alerts.rows)
    assert all(e.kind == "high_risk" for e in events)


async def test_a_delivery_is_queued_per_active_channel(alert_service, uow, add_channel):
    hooks = add_channel(TENANT)
    add_channel(TENANT, active=False)
    add_channel("t-other")

    outcome = await alert_service.raise_alerts([score()], now=NOW)

    assert outcome.deliveries == 1
    (delivery,) = uow.deliveries.rows
    assert (delivery.channel_id, delivery.next_attempt_at) == (hooks.id, NOW)


async def test_a_low_score_raises_nothing(alert_service, uow):
    outcome = await alert_service.raise_alerts([score(probability=0.3)], now=NOW)

    assert outcome.alerts == 0
    assert uow.alerts.rows == {}
    assert uow.session.outbox() == []


async def test_a_rise_in_probability_raises_a_risk_increase(alert_service, uow):
    await alert_service.raise_alerts([score(probability=0.5, previous=0.2)], now=NOW)

    assert [a.kind for a in uow.alerts.rows.values()] == ["risk_increase"]


async def test_the_same_kind_inside_the_cooldown_raises_nothing(alert_service, uow):
    await alert_service.raise_alerts([score()], now=NOW)

    again = await alert_service.raise_alerts([score()], now=NOW + timedelta(hours=23))

    assert again.alerts == 0
    assert len(uow.alerts.rows) == 1
    assert len(raised_events(uow)) == 1


async def test_after_the_cooldown_the_same_kind_is_raised_again(alert_service, uow):
    await alert_service.raise_alerts([score()], now=NOW)

    again = await alert_service.raise_alerts([score()], now=NOW + timedelta(hours=24, seconds=1))

    assert again.alerts == 1
    assert len(uow.alerts.rows) == 2


async def test_a_tenants_own_cooldown_applies(alert_service, uow):
    uow.rules.rows[TENANT] = AlertRule(tenant_id=TENANT, cooldown_minutes=10)
    await alert_service.raise_alerts([score()], now=NOW)

    again = await alert_service.raise_alerts([score()], now=NOW + timedelta(minutes=11))

    assert again.alerts == 1


async def test_a_tenants_own_threshold_applies(alert_service, uow):
    uow.rules.rows[TENANT] = AlertRule(tenant_id=TENANT, high_risk_threshold=0.95)

    outcome = await alert_service.raise_alerts([score(probability=0.9)], now=NOW)

    assert outcome.alerts == 0


async def test_one_alert_per_customer_and_kind_in_a_batch(alert_service, uow):
    outcome = await alert_service.raise_alerts(
        [score("c1", 0.9), score("c1", 0.95), score("c1", 0.9, tenant_id="t-2")], now=NOW
    )

    assert outcome.alerts == 2
    assert sorted((a.tenant_id, a.customer_id) for a in uow.alerts.rows.values()) == [
        (TENANT, "c1"),
        ("t-2", "c1"),
    ]


async def test_backfilled_scores_raise_nothing(alert_service, uow):
    outcome = await alert_service.raise_alerts([score(backfill=True)], now=NOW)

    assert outcome.alerts == 0
    assert uow.session.outbox() == []


async def test_acknowledging_records_history_and_publishes_the_change(alert_service, uow):
    await alert_service.raise_alerts([score()], now=NOW)
    (alert,) = uow.alerts.rows.values()

    read = await alert_service.change(
        TENANT, alert.id, "user-1", Change("acknowledge"), now=NOW + timedelta(minutes=5)
    )

    assert read.status == "acknowledged"
    assert [h.action for h in uow.history.rows] == ["raised", "acknowledged"]
    (updated,) = [
        ChurnAlertUpdatedV1.model_validate(e.payload)
        for e in uow.session.outbox()
        if e.event_type == ChurnAlertUpdatedV1.event_type
    ]
    assert (updated.alert_id, updated.action, updated.actor) == (alert.id, "acknowledged", "user-1")


async def test_a_resolved_alert_cannot_be_acknowledged(alert_service, uow):
    await alert_service.raise_alerts([score()], now=NOW)
    (alert,) = uow.alerts.rows.values()
    await alert_service.change(TENANT, alert.id, "user-1", Change("resolve", outcome="retained"))

    with pytest.raises(InvalidTransitionError):
        async with uow:
            await alert_service.change(TENANT, alert.id, "user-1", Change("acknowledge"))

    assert uow.alerts.rows[alert.id].status == "resolved"
    assert uow.rollbacks == 1
