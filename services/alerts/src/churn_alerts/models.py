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
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


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
    status: str = Field(default="open", max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


class Delivery(Base, table=True):
    """One alert on its way to one channel: ``pending`` → ``delivered`` | ``failed`` |
    ``unknown`` (a send interrupted at shutdown after the request was written: the receiver may
    have it, so it is not sent again; see :data:`churn_alerts.service.DeliveryOutcome`)."""

    __tablename__ = "deliveries"
    __table_args__ = (sa.Index("ix_deliveries_status_next_attempt", "status", "next_attempt_at"),)

    id: str = Field(default_factory=_uuid, primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64, index=True)
    alert_id: str = Field(max_length=36, foreign_key="alerts.id", index=True)
    channel_id: str = Field(max_length=36, foreign_key="alert_channels.id", index=True)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column())


outbox = outbox_table(Base.metadata)
processed_events = processed_events_table(Base.metadata)
