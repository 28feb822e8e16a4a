"""Payloads carried in :class:`churn_shared.kafka.Envelope` on each versioned topic."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, Field

from churn_shared.contracts.base import Contract, EventContract
from churn_shared.fields import Timestamp


class Topics:
    """Topic names. Every topic is keyed by customer id, so one customer's messages stay ordered."""

    CUSTOMER_EVENTS = "customer.events.v1"
    CUSTOMER_FEATURES = "customer.features.v1"
    CHURN_SCORES = "churn.scores.v1"
    CHURN_ALERTS = "churn.alerts.v1"

    @staticmethod
    def dead_letter(topic: str) -> str:
        return f"{topic}.dlq"


CustomerEventType = Literal[
    "signup",
    "order_placed",
    "order_returned",
    "login",
    "email_sent",
    "email_opened",
    "support_ticket_opened",
    "payment_failed",
    "loyalty_points_changed",
]
CUSTOMER_EVENT_TYPES: tuple[str, ...] = CustomerEventType.__args__  # type: ignore[attr-defined]

#: The behavioural feature vector, in the order models are trained and served with.
FEATURE_NAMES: tuple[str, ...] = (
    "total_orders",
    "total_spent",
    "avg_order_value",
    "days_since_last_order",
    "orders_last_90d",
    "spend_last_90d",
    "email_open_rate",
    "logins_last_30d",
    "support_tickets_last_90d",
    "payment_failures_last_90d",
    "discount_usage_rate",
    "returns_count",
    "loyalty_points",
    "account_age_days",
)
#: Features of the raw order and activity history (profile contract version 2): every profile
#: carries them after :data:`FEATURE_NAMES`, so a model trained on version 1 still finds each
#: column it reads by name.
HISTORY_FEATURE_NAMES: tuple[str, ...] = (
    "order_interval_mean_days",
    "order_interval_cv",
    "order_recency_ratio",
    "order_rate_trend_30d",
    "order_rate_trend_90d",
    "spend_trend_90d",
    "days_since_last_activity",
)
#: Every feature a profile carries (version 2), in the order point-in-time sets list them.
PROFILE_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES + HISTORY_FEATURE_NAMES
#: The feature lists a model may read to score the online stream, by profile contract version:
#: a model keeps the list it was trained on, so one trained on an older version still serves.
ONLINE_FEATURE_SETS: dict[int, tuple[str, ...]] = {1: FEATURE_NAMES, 2: PROFILE_FEATURE_NAMES}


class CustomerEventReceivedV1(EventContract):
    """One thing a customer did, as producers put it on ``customer.events.v1``."""

    event_type: ClassVar[str] = "CustomerEventReceivedV1"
    topic: ClassVar[str] = Topics.CUSTOMER_EVENTS

    event_id: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=64)
    type: CustomerEventType
    occurred_at: Timestamp
    properties: dict[str, Any] = Field(default_factory=dict)


class CustomerFeaturesUpdatedV1(EventContract):
    """A customer's feature profile after new events, as of ``as_of``."""

    event_type: ClassVar[str] = "CustomerFeaturesUpdatedV1"
    topic: ClassVar[str] = Topics.CUSTOMER_FEATURES

    customer_id: str
    features: dict[str, float | None]
    as_of: AwareDatetime
    #: Backfilled history is scored but must not raise alerts.
    backfill: bool = False


class Driver(Contract):
    """One feature's contribution to a score (in log-odds), with its value and direction."""

    feature: str
    value: float | None
    contribution: float
    direction: Literal["increases_risk", "decreases_risk"]


class ChurnScoreComputedV1(EventContract):
    """A customer's churn probability from one model, with the drivers behind it."""

    event_type: ClassVar[str] = "ChurnScoreComputedV1"
    topic: ClassVar[str] = Topics.CHURN_SCORES

    customer_id: str
    churn_probability: float = Field(ge=0.0, le=1.0)
    previous_probability: float | None = None
    risk_level: Literal["low", "medium", "high"]
    model_version: str
    scored_at: AwareDatetime
    drivers: list[Driver] = Field(default_factory=list)
    backfill: bool = False


class ChurnAlertRaisedV1(EventContract):
    """An alert the alerts service raised for a customer (shown live, delivered to channels)."""

    event_type: ClassVar[str] = "ChurnAlertRaisedV1"
    topic: ClassVar[str] = Topics.CHURN_ALERTS

    alert_id: str
    customer_id: str
    kind: Literal["high_risk", "risk_increase"]
    churn_probability: float
    previous_probability: float | None = None
    risk_level: Literal["low", "medium", "high"]
    model_version: str
    drivers: list[Driver] = Field(default_factory=list)
    created_at: datetime


AlertStatus = Literal["open", "acknowledged", "snoozed", "resolved"]
AlertAction = Literal["acknowledged", "assigned", "snoozed", "woken", "resolved", "reopened"]
AlertOutcome = Literal["retained", "churned", "false_alarm"]


class ChurnAlertUpdatedV1(EventContract):
    """Someone (or the clock, for a snooze that ran out) changed how an alert is handled: the
    live feed shows it as ``alert_updated``. A resolution carries its ``outcome``, the label a
    retention team gave the alert (retained, churned, false alarm), for model evaluation."""

    event_type: ClassVar[str] = "ChurnAlertUpdatedV1"
    topic: ClassVar[str] = Topics.CHURN_ALERTS

    alert_id: str
    customer_id: str
    kind: Literal["high_risk", "risk_increase"]
    risk_level: Literal["low", "medium", "high"]
    action: AlertAction
    #: The user id (token subject) who acted, or ``system``.
    actor: str
    status: AlertStatus
    assignee_id: str | None = None
    snoozed_until: AwareDatetime | None = None
    outcome: AlertOutcome | None = None
    note: str | None = None
    resolved_at: AwareDatetime | None = None
    created_at: datetime
    updated_at: AwareDatetime


class AlertChannelDisabledV1(EventContract):
    """The alerts service stopped delivering to a channel whose deliveries kept going dead; an
    admin must fix the receiver and enable it again. Keyed by the channel id."""

    event_type: ClassVar[str] = "AlertChannelDisabledV1"
    topic: ClassVar[str] = Topics.CHURN_ALERTS

    channel_id: str
    name: str
    kind: str
    reason: str
    dead_deliveries: int
    disabled_at: AwareDatetime
