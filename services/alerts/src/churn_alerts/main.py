"""The alerts service's process. ``uvicorn --factory churn_alerts.main:app_from_env``."""

from __future__ import annotations

from fastapi import FastAPI

from churn_alerts.api.routes import (
    alerts_router,
    channels_router,
    dashboard_router,
    deliveries_router,
    rules_router,
)
from churn_alerts.config import Settings
from churn_alerts.dependencies import AlertsState
from churn_alerts.users import UserDirectory
from churn_alerts.worker import RUNTIME
from churn_shared.security import TokenVerifier


def create_app(
    settings: Settings | None = None,
    *,
    token_verifier: TokenVerifier | None = None,
    user_directory: UserDirectory | None = None,
) -> FastAPI:
    """``user_directory`` replaces the auth service's users API (tests)."""
    settings = settings or Settings()
    state = AlertsState(settings)
    if user_directory is not None:
        state.users = user_directory
    return RUNTIME.create_app(
        state,
        title="churn alerts",
        description="Alert rules, channels, alerts and their signed webhook deliveries.",
        routers=(alerts_router, rules_router, channels_router, deliveries_router, dashboard_router),
        token_verifier=token_verifier,
    )


def app_from_env() -> FastAPI:
    return create_app(Settings())
