"""Request and response models of the alerts API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from churn_alerts.channels import MAX_RECIPIENTS, ChannelKind, address_problem, display_url
from churn_alerts.lifecycle import AlertAction, AlertOutcome, AlertStatus
from churn_alerts.rules import AlertKind
from churn_alerts.schedule import DeliveryMode, UnknownTimeZoneError, zone
from churn_shared.fields import StrictFloat, StrictInt, Timestamp, TimeString

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
    status: AlertStatus
    #: The user (auth's user id) working the alert, or ``None``.
    assignee_id: str | None = None
    snoozed_until: datetime | None = None
    outcome: AlertOutcome | None = None
    resolution_note: str | None = None
    resolved_at: datetime | None = None
    created_at: datetime
    updated_at: datetime | None = None


class AlertPage(BaseModel):
    items: list[AlertRead]
    next_cursor: str | None


#: A user id as the auth service issues them (token subjects), never an API key's subject.
UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]
AlertId = Annotated[str, StringConstraints(min_length=1, max_length=36)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]


class AlertAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The assignee (auth's user id), ``"me"`` for the caller, or ``null`` to unassign.
    user_id: UserId | None


class AlertSnooze(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: When the alert comes back as ``open`` (in the future, at most 90 days ahead).
    until: Timestamp


class AlertResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: AlertOutcome
    note: Note | None = None


class AlertIds(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_ids: Annotated[list[AlertId], Field(min_length=1, max_length=200)]


class BulkAssign(AlertIds, AlertAssign):
    pass


class BulkResolve(AlertIds, AlertResolve):
    pass


class BulkItemResult(BaseModel):
    id: str
    #: ``ok``, ``not_found`` or ``conflict`` (the alert's state does not allow the action).
    result: Literal["ok", "not_found", "conflict"]
    status: AlertStatus | None = None
    detail: str | None = None


class BulkResult(BaseModel):
    items: list[BulkItemResult]


class AlertHistoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    action: Literal["raised"] | AlertAction
    #: The user id (token subject) who acted, or ``system``.
    actor: str
    from_status: AlertStatus | None
    to_status: AlertStatus
    details: dict[str, Any]
    created_at: datetime


class AlertHistory(BaseModel):
    items: list[AlertHistoryRead]


class DeliveryAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    attempt: int
    #: ``delivered``, ``failed``, ``refused``, ``not_sent`` or ``unknown``.
    outcome: str
    status_code: int | None
    error: str | None
    attempted_at: datetime


class AlertDeliveryRead(BaseModel):
    """The alert's delivery to one channel, with every attempt."""

    id: str
    channel_id: str
    channel_name: str
    channel_kind: ChannelKind
    #: Set when the alert went out in this digest of a digest-mode channel.
    digest_id: str | None = None
    status: str
    attempts: list[DeliveryAttemptRead]
    delivered_at: datetime | None
    created_at: datetime


class AlertDeliveries(BaseModel):
    items: list[AlertDeliveryRead]


class AlertOutcomeRead(BaseModel):
    """One resolved alert as a label: what became of the customer after the alert."""

    alert_id: str
    customer_id: str
    kind: AlertKind
    outcome: AlertOutcome
    churn_probability: float
    model_version: str
    created_at: datetime
    resolved_at: datetime


class AlertOutcomes(BaseModel):
    items: list[AlertOutcomeRead]


class QuietHoursWindow(BaseModel):
    """A local time window (``22:00`` to ``07:00`` crosses midnight), in the rules' ``timezone``."""

    model_config = ConfigDict(extra="forbid")

    start: TimeString = Field(examples=["22:00"])
    end: TimeString = Field(examples=["07:00"])

    @model_validator(mode="after")
    def _minutes(self) -> Self:
        for value in (self.start, self.end):
            if value.tzinfo is not None:
                raise ValueError("quiet hours are local times: no offset (set timezone)")
            if value.second or value.microsecond:
                raise ValueError("quiet hours are whole minutes (HH:MM)")
        if self.start == self.end:
            raise ValueError("quiet hours need start and end to differ")
        return self


class AlertRulesBase(BaseModel):
    high_risk_threshold: StrictFloat = Field(gt=0.0, le=1.0)
    risk_increase_threshold: StrictFloat = Field(gt=0.0, le=1.0)
    cooldown_minutes: StrictInt = Field(ge=0, le=525_600)
    #: Hysteresis: ``high_risk`` is raised when a customer enters the high band (reaches
    #: ``high_risk_threshold``) and not again until they fell below this and came back.
    #: ``null`` (the default): no hysteresis, the cooldown alone spaces ``high_risk`` alerts.
    high_exit_threshold: StrictFloat | None = Field(default=None, ge=0.0, lt=1.0)
    #: The tenant's IANA time zone (``Europe/Berlin``): quiet hours and digest times are local.
    timezone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Europe/Berlin"])
    #: While it is quiet, deliveries wait (alerts are still raised, listed and pushed live at
    #: once); they leave when the window ends. ``null``: never quiet.
    quiet_hours: QuietHoursWindow | None = None


class AlertRulesUpdate(AlertRulesBase):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _known_zone(self) -> Self:
        try:
            zone(self.timezone)
        except UnknownTimeZoneError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @model_validator(mode="after")
    def _exit_below_entry(self) -> Self:
        if (
            self.high_exit_threshold is not None
            and self.high_exit_threshold >= self.high_risk_threshold
        ):
            raise ValueError("high_exit_threshold must be below high_risk_threshold")
        return self


class AlertRulesRead(AlertRulesBase):
    #: ``None`` while the tenant uses the defaults.
    updated_at: datetime | None = None


def _plain_address(value: str) -> str:
    problem = address_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: A channel's destination (``format: uri`` tells generated clients; the URL policy decides).
ChannelUrl = Annotated[
    str, Field(min_length=1, max_length=2048, json_schema_extra={"format": "uri"})
]
#: A recipient: ``local@domain`` only (no display name, nothing that could add a header).
EmailAddress = Annotated[str, StringConstraints(max_length=254), AfterValidator(_plain_address)]


class AlertChannelCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # What ``_destination`` enforces, declared for generated clients (null = not
            # given): an email channel takes recipients, every other kind a url.
            "if": {"required": ["kind"], "properties": {"kind": {"const": "email"}}},
            "then": {
                "required": ["recipients"],
                "properties": {"recipients": {"type": "array"}, "url": {"type": "null"}},
            },
            "else": {
                "required": ["url"],
                "properties": {"url": {"type": "string"}, "recipients": {"type": "null"}},
            },
        },
    )

    #: ``webhook`` (signed JSON), ``slack`` or ``discord`` (their incoming-webhook URLs), or
    #: ``email`` (to ``recipients``, through the server's SMTP relay; no ``url``).
    kind: ChannelKind = "webhook"
    #: An absolute ``https://`` (or, in development mode, ``http://``) URL.
    url: ChannelUrl | None = None
    #: ``email`` channels only: 1 to 20 plain addresses.
    recipients: (
        Annotated[list[EmailAddress], Field(min_length=1, max_length=MAX_RECIPIENTS)] | None
    ) = None
    name: str | None = Field(default=None, min_length=1, max_length=200)
    #: ``immediate``: one message per alert. ``hourly`` / ``daily``: one digest message listing
    #: the alerts since the previous digest, grouped by risk level, at the top of each local
    #: hour or daily at ``digest_hour`` (the tenant's ``timezone``); no alerts, no message.
    delivery_mode: DeliveryMode = "immediate"
    digest_hour: StrictInt = Field(default=8, ge=0, le=23)

    @model_validator(mode="after")
    def _destination(self) -> Self:
        if self.kind == "email":
            if self.recipients is None or self.url is not None:
                raise ValueError("an email channel takes recipients, not a url")
            if len({r.lower() for r in self.recipients}) != len(self.recipients):
                raise ValueError("recipients must differ")
        elif self.url is None or self.recipients is not None:
            raise ValueError(f"a {self.kind} channel takes a url, not recipients")
        return self


class AlertChannelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: ChannelKind
    name: str
    #: Slack and Discord URLs embed their credential: reads show only its last characters.
    url: str
    #: ``email`` channels: where messages go.
    recipients: list[str] | None = None
    delivery_mode: DeliveryMode = "immediate"
    digest_hour: int = 8
    #: When the next digest is due (digest modes).
    next_digest_at: datetime | None = None
    created_at: datetime
    #: Set when deliveries kept going dead; enable it again with ``POST .../enable``.
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    @model_validator(mode="after")
    def _mask_credential(self) -> Self:
        self.url = display_url(self.kind, self.url)
        return self


class AlertChannelCreated(AlertChannelRead):
    #: The Standard Webhooks secret (``whsec_...``) that signs ``webhook-signature`` (and the
    #: older ``X-Churn-Signature``); shown only in this response.
    secret: str


class AlertChannelList(BaseModel):
    items: list[AlertChannelRead]


DeliveryStatus = Literal["pending", "delivered", "dead", "failed", "unknown"]


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    #: Also the ``webhook-id`` of every attempt: receivers deduplicate on it.
    id: str
    #: The alert, or ``None`` for a digest's delivery (``digest_id``).
    alert_id: str | None
    digest_id: str | None = None
    channel_id: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None
    created_at: datetime


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None


class ChannelTestResult(BaseModel):
    """What the receiver answered to a test message."""

    delivered: bool
    #: ``delivered``, ``failed``, ``rejected`` or ``refused`` (see the delivery outcomes).
    outcome: str
    status_code: int | None
    error: str | None
    duration_ms: int


class AlertStatusCounts(BaseModel):
    """Alerts per status."""

    open: int = 0
    acknowledged: int = 0
    snoozed: int = 0
    resolved: int = 0


class AlertsSummary(BaseModel):
    """The alerts' part of the dashboard (``GET /v1/dashboard/summary`` at the gateway)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"alerts": {"open": 12, "acknowledged": 4, "snoozed": 1, "resolved": 40}}]
        }
    )

    alerts: AlertStatusCounts


class AlertTrendDay(BaseModel):
    """One UTC day: the alerts per status at its end (today: now)."""

    date: date
    alerts: AlertStatusCounts


class AlertTrend(BaseModel):
    """Day by day, oldest first, the last day included."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "date": "2026-12-01",
                            "alerts": {"open": 12, "acknowledged": 4, "snoozed": 1, "resolved": 40},
                        }
                    ]
                }
            ]
        }
    )

    items: list[AlertTrendDay]
