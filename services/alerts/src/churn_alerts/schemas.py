"""Request and response models of the alerts API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from churn_alerts.channels import ChannelKind, display_url
from churn_alerts.rules import AlertKind

RiskLevel = Literal["low", "medium", "high"]


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

    #: ``webhook`` (signed JSON), ``slack`` or ``discord`` (their incoming-webhook URLs).
    kind: ChannelKind = "webhook"
    url: str = Field(min_length=1, max_length=2048)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class AlertChannelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: ChannelKind
    name: str
    #: Slack and Discord URLs embed their credential: reads show only its last characters.
    url: str
    created_at: datetime

    @model_validator(mode="after")
    def _mask_credential(self) -> Self:
        self.url = display_url(self.kind, self.url)
        return self


class AlertChannelCreated(AlertChannelRead):
    #: HMAC key for ``X-Churn-Signature``; shown only in this response.
    secret: str


class AlertChannelList(BaseModel):
    items: list[AlertChannelRead]
