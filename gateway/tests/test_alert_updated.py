"""A change to an alert reaches the tenant's room as ``alert_updated``."""

from __future__ import annotations

from datetime import UTC, datetime

from churn_gateway.events.handlers import LIVE_FEED_TOPICS, live_message
from churn_shared.contracts import ChurnAlertUpdatedV1, Topics
from churn_shared.kafka import Envelope


def test_alert_change_becomes_alert_updated_for_its_tenant():
    now = datetime.now(UTC)
    update = ChurnAlertUpdatedV1(
        alert_id="a1",
        customer_id="c1",
        kind="high_risk",
        risk_level="high",
        action="resolved",
        actor="u1",
        status="resolved",
        assignee_id="u1",
        outcome="retained",
        resolved_at=now,
        created_at=now,
        updated_at=now,
    )
    envelope = Envelope.wrap(tenant_id="t1", producer="alerts", payload=update)
    message = live_message(Topics.CHURN_ALERTS, envelope)
    assert message is not None
    assert (message.event, message.tenant_id) == ("alert_updated", "t1")
    assert message.payload == update.model_dump(mode="json")
    assert Topics.CHURN_ALERTS in LIVE_FEED_TOPICS


def test_a_disabled_channel_is_shown_to_its_tenant():
    from churn_shared.contracts import AlertChannelDisabledV1

    disabled = AlertChannelDisabledV1(
        channel_id="ch1",
        name="ops",
        kind="slack",
        reason="5 deliveries in a row went dead",
        dead_deliveries=5,
        disabled_at=datetime.now(UTC),
    )
    envelope = Envelope.wrap(tenant_id="t1", producer="alerts", key="ch1", payload=disabled)
    message = live_message(Topics.CHURN_ALERTS, envelope)
    assert message is not None
    assert (message.event, message.tenant_id) == ("alert_channel_disabled", "t1")
