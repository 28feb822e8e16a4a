"""Shapes the gateway itself reads or sends (everything else belongs to the upstream services)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Socket.IO event names of the live feed.
LiveEventName = Literal[
    "churn_alert",
    "alert_updated",
    "alert_channel_disabled",
    "score_update",
    "training_progress",
    "prediction_job_progress",
]
CHURN_ALERT_EVENT: LiveEventName = "churn_alert"
#: An alert was acknowledged, assigned, snoozed, resolved, reopened or woken.
ALERT_UPDATED_EVENT: LiveEventName = "alert_updated"
#: A channel was disabled after too many dead deliveries: admins must look at it.
ALERT_CHANNEL_DISABLED_EVENT: LiveEventName = "alert_channel_disabled"
SCORE_UPDATE_EVENT: LiveEventName = "score_update"
TRAINING_PROGRESS_EVENT: LiveEventName = "training_progress"
#: A file batch job (``POST /v1/predictions/jobs``) moved: status and row counts.
PREDICTION_JOB_PROGRESS_EVENT: LiveEventName = "prediction_job_progress"


class SocketAuth(BaseModel):
    """The ``auth`` payload of a Socket.IO connect: ``{"token": "<access token>"}``."""

    model_config = ConfigDict(extra="ignore")

    token: str = Field(min_length=1, max_length=8192)


class LiveMessage(BaseModel):
    """One message of the live feed, addressed to one tenant's room."""

    event: LiveEventName
    tenant_id: str
    payload: dict[str, Any]
