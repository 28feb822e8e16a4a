"""Tables of the alerts service, on its own registry (its own schema and Alembic history)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from churn_shared.db import UTCDateTime, utcnow
from churn_shared.kafka import outbox_table, processed_events_table


class Base(SQLModel, registry=registry()):
    pass


def _uuid() -> str:
    return str(uuid.uuid4())


def _utc_column(*, nullable: bool = False, index: bool = False) -> Any:
    return sa.Column(UTCDateTime(), nullable=nullable, index=index)


class AlertRule(Base, table=True):
    """A tenant's alerting rules; a tenant without a row uses the defaults."""

    __tablename__ = "alert_rules"

    tenant_id: str = Field(primary_key=True, max_length=64)
    high_risk_threshold: float = 0.7
    risk_increase_threshold: float = 0.2
    cooldown_minutes: int = 1440
    #: Hysteresis of the high band (see :mod:`churn_alerts.rules`); ``None``: off.
    high_exit_threshold: float | None = None
    #: IANA time zone of quiet hours and digests.
    timezone: str = Field(
        default="UTC",
        sa_column=sa.Column(sa.String(64), nullable=False, server_default="UTC"),
    )
    #: Local ``HH:MM`` bounds of the quiet hours (both or neither).
    quiet_hours_start: str | None = Field(default=None, max_length=5)
    quiet_hours_end: str | None = Field(default=None, max_length=5)
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


class RiskBand(Base, table=True):
    """Whether a customer of a tenant with hysteresis is in the high band. Written only when the
    band changes; a customer without a row is not in it."""

    __tablename__ = "risk_bands"

    tenant_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64)
    in_high_band: bool
    #: The score that last moved the customer in or out of the band.
    churn_probability: float
    changed_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


class AlertChannel(Base, table=True):
    """Where a tenant's alerts are delivered. ``kind`` selects the transport (``webhook``)."""

    __tablename__ = "alert_channels"

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32)
    name: str = Field(max_length=200)
    url: str = Field(max_length=2048)
    #: HMAC key for the signature header; shown once, when the channel is created.
    secret: str = Field(max_length=128)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())
    #: Pacing (GCRA): the earliest time the next request may leave for this destination.
    paced_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    #: Deliveries that went ``dead`` since the last one delivered; at the limit the channel is
    #: disabled (``disabled_at``) until an admin enables it again.
    consecutive_dead: int = Field(
        default=0, sa_column=sa.Column(sa.Integer(), nullable=False, server_default="0")
    )
    disabled_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    disabled_reason: str | None = Field(default=None, max_length=300)
    #: ``immediate`` (one message per alert), ``hourly`` or ``daily`` (one digest message).
    delivery_mode: str = Field(
        default="immediate",
        sa_column=sa.Column(sa.String(16), nullable=False, server_default="immediate"),
    )
    #: Local hour (tenant's time zone) of a ``daily`` digest.
    digest_hour: int = Field(
        default=8, sa_column=sa.Column(sa.Integer(), nullable=False, server_default="8")
    )
    #: ``email`` channels: the addresses (``url`` then shows them as a ``mailto:`` URI).
    recipients: list[str] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON(), nullable=True)
    )
    #: When the next digest is due (digest modes only).
    next_digest_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class Alert(Base, table=True):
    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index(
            "ix_alerts_tenant_customer_kind_created",
            "tenant_id",
            "customer_id",
            "kind",
            "created_at",
        ),
        sa.Index("ix_alerts_tenant_created", "tenant_id", "created_at"),
        sa.Index("ix_alerts_tenant_status_created", "tenant_id", "status", "created_at"),
        sa.Index("ix_alerts_status_snoozed_until", "status", "snoozed_until"),
    )

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    kind: str = Field(max_length=32)
    churn_probability: float
    previous_probability: float | None = None
    risk_level: str = Field(max_length=16)
    model_version: str = Field(max_length=128)
    drivers: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False)
    )
    #: ``open`` → ``acknowledged`` → ``resolved``, or ``snoozed`` until ``snoozed_until``
    #: (see :mod:`churn_alerts.lifecycle`).
    status: str = Field(default="open", max_length=16)
    #: A user of the tenant (the auth service's user id), or nobody.
    assignee_id: str | None = Field(default=None, max_length=64)
    snoozed_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    #: What became of the customer, set on resolution: a label for model evaluation.
    outcome: str | None = Field(default=None, max_length=16)
    resolution_note: str | None = Field(default=None, max_length=1000)
    resolved_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())
    #: The last change of status, assignee or snooze; ``None`` until the first.
    updated_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class AlertHistory(Base, table=True):
    """The audit trail of an alert: who did what when. Rows are only ever added."""

    __tablename__ = "alert_history"
    __table_args__ = (
        sa.Index("ix_alert_history_tenant_alert_created", "tenant_id", "alert_id", "created_at"),
    )

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    alert_id: str = Field(max_length=36, foreign_key="alerts.id")
    action: str = Field(max_length=32)
    #: The token subject of the user who acted, or ``system``.
    actor: str = Field(max_length=128)
    from_status: str | None = Field(default=None, max_length=16)
    to_status: str = Field(max_length=16)
    details: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


class Digest(Base, table=True):
    """One digest message of a channel: the alerts it got since its previous digest."""

    __tablename__ = "digests"
    __table_args__ = (sa.Index("ix_digests_channel_period_end", "channel_id", "period_end"),)

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    channel_id: str = Field(max_length=36, foreign_key="alert_channels.id")
    period_start: datetime = Field(sa_column=_utc_column())
    period_end: datetime = Field(sa_column=_utc_column())
    alert_count: int
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


class DigestItem(Base, table=True):
    """An alert waiting for (``digest_id`` null) or taken into a digest of a channel."""

    __tablename__ = "digest_items"
    __table_args__ = (
        sa.Index("ix_digest_items_channel_digest", "channel_id", "digest_id", "created_at"),
    )

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    channel_id: str = Field(max_length=36, foreign_key="alert_channels.id")
    alert_id: str = Field(max_length=36, foreign_key="alerts.id", index=True)
    digest_id: str | None = Field(default=None, max_length=36, foreign_key="digests.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


class Delivery(Base, table=True):
    """One message on its way to one channel, for one alert (``alert_id``) or one digest
    (``digest_id``): ``pending`` → ``delivered`` | ``dead`` (retries
    exhausted, or refused for good by the receiver; listed and replayable) | ``failed`` (the
    destination is refused by the URL policy, or the channel was deleted) | ``unknown`` (a send
    interrupted at shutdown after the request was written: the receiver may have it, so it is
    not sent again; see :data:`churn_alerts.service.DeliveryOutcome`). Its id is the
    ``webhook-id`` of every attempt, so receivers can drop repeats."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.Index("ix_deliveries_status_next_attempt", "status", "next_attempt_at"),
        sa.Index("ix_deliveries_tenant_status_created", "tenant_id", "status", "created_at"),
    )

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    alert_id: str | None = Field(default=None, max_length=36, foreign_key="alerts.id", index=True)
    digest_id: str | None = Field(default=None, max_length=36, foreign_key="digests.id", index=True)
    channel_id: str = Field(max_length=36, foreign_key="alert_channels.id", index=True)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


class DeliveryAttempt(Base, table=True):
    """One try of a delivery: what the receiver answered (or why nothing was sent), and when."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (
        sa.Index("ix_delivery_attempts_tenant_alert", "tenant_id", "alert_id"),
        sa.Index("ix_delivery_attempts_delivery", "delivery_id", "attempted_at"),
    )

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    delivery_id: str = Field(max_length=36, foreign_key="deliveries.id")
    #: ``None`` for a digest's delivery.
    alert_id: str | None = Field(default=None, max_length=36)
    channel_id: str = Field(max_length=36)
    attempt: int
    #: See :data:`churn_alerts.service.DeliveryOutcome`.
    outcome: str = Field(max_length=16)
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=1000)
    attempted_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


outbox = outbox_table(Base.metadata)
processed_events = processed_events_table(Base.metadata)
