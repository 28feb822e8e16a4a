"""Shapes the gateway itself reads or sends (everything else belongs to the upstream services)."""

from __future__ import annotations

from datetime import date
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
    "import_progress",
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
#: A customer file import (``POST /v1/customers/import``) moved: status and row counts.
IMPORT_PROGRESS_EVENT: LiveEventName = "import_progress"


class SocketAuth(BaseModel):
    """The ``auth`` payload of a Socket.IO connect: ``{"token": "<access token>"}``."""

    model_config = ConfigDict(extra="ignore")

    token: str = Field(min_length=1, max_length=8192)


class LiveMessage(BaseModel):
    """One message of the live feed, addressed to one tenant's room."""

    event: LiveEventName
    tenant_id: str
    payload: dict[str, Any]


class DashboardRiskLevels(BaseModel):
    """Customers per latest risk level; ``unscored``: not scored yet."""

    high: int
    medium: int
    low: int
    unscored: int


class DashboardAlertStatuses(BaseModel):
    """Alerts per status."""

    open: int
    acknowledged: int
    snoozed: int
    resolved: int


class DashboardSummary(BaseModel):
    """The tenant's dashboard now (see ``GET /v1/dashboard/summary``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customers": 1200,
                    "risk_levels": {"high": 126, "medium": 296, "low": 758, "unscored": 20},
                    "score_histogram": [
                        *(310, 220, 128, 100, 60, 50, 45, 40, 35, 30),
                        *(30, 28, 25, 22, 20, 18, 10, 5, 2, 2),
                    ],
                    "moved_up_last_7_days": 31,
                    "revenue_at_risk": 18342.5,
                    "alerts": {"open": 12, "acknowledged": 4, "snoozed": 1, "resolved": 40},
                }
            ]
        }
    )

    customers: int = Field(description="The tenant's customers")
    risk_levels: DashboardRiskLevels
    score_histogram: list[int] = Field(
        min_length=20,
        max_length=20,
        description="Scored customers per churn probability bin: bin i holds "
        "i/20 <= probability < (i+1)/20, the last one also 1.0",
    )
    moved_up_last_7_days: int = Field(
        description="Customers whose risk level rose (low to medium or high, medium to high) "
        "at least once in the last 7 days; a first score is not a rise"
    )
    revenue_at_risk: float = Field(
        description="Σ over scored customers of churn_probability * spend_last_90d (the "
        "customer's order_placed amounts of the last 90 days, 0 without orders)"
    )
    alerts: DashboardAlertStatuses


class DashboardTrendDay(BaseModel):
    """One UTC day: customers per risk level and alerts per status at its end (today: now),
    and the customers whose risk level rose during it."""

    date: date
    risk_levels: DashboardRiskLevels
    moved_up: int
    alerts: DashboardAlertStatuses


class DashboardTrend(BaseModel):
    """Day by day, oldest first, today last (see ``GET /v1/dashboard/trend``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "days": 2,
                    "items": [
                        {
                            "date": "2026-11-30",
                            "risk_levels": {"high": 120, "medium": 300, "low": 760, "unscored": 20},
                            "moved_up": 4,
                            "alerts": {"open": 10, "acknowledged": 4, "snoozed": 1, "resolved": 38},
                        },
                        {
                            "date": "2026-12-01",
                            "risk_levels": {"high": 126, "medium": 296, "low": 758, "unscored": 20},
                            "moved_up": 7,
                            "alerts": {"open": 12, "acknowledged": 4, "snoozed": 1, "resolved": 40},
                        },
                    ],
                }
            ]
        }
    )

    days: int
    items: list[DashboardTrendDay]
