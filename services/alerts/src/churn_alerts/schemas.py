"""Request and response models of the alerts API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from churn_alerts.rules import AlertKind

RiskLevel = Literal["low", "medium", "high"]
ChannelKind = Literal["webhook"]


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    kind: AlertKind
    churn_probability: float
    previous_probability: float | None
    risk_level: RiskLevel
    model_version: str
    drivers: list[dict[str, Any]]
    status: str
    created_at: datetime


class AlertPage(BaseModel):
    items: list[AlertRead]
    next_cursor: str | None


class AlertRulesBase(BaseModel):
    high_risk_threshold: float = Field(gt=0.0, le=1.0)
    risk_increase_threshold: float = Field(gt=0.0, le=1.0)
    cooldown_minutes: int = Field(ge=0, le=525_600)


class AlertRulesUpdate(AlertRulesBase):
    model_config = ConfigDict(extra="forbid")


class AlertRulesRead(AlertRulesBase):
    model_config = ConfigDict(from_attributes=True)

    #: ``None`` while the tenant uses the defaults.
    updated_at: datetime | None = None


class AlertChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ChannelKind = "webhook"
    url: str = Field(min_length=1, max_length=2048)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class AlertChannelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: ChannelKind
    name: str
    url: str
    created_at: datetime


class AlertChannelCreated(AlertChannelRead):
    #: HMAC key for ``X-Churn-Signature``; shown only in this response.
    secret: str


class AlertChannelList(BaseModel):
    items: list[AlertChannelRead]
