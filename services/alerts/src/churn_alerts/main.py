"""The alerts service's FastAPI app. ``uvicorn --factory churn_alerts.main:app_from_env``."""

from __future__ import annotations

from fastapi import FastAPI

from churn_alerts.api.routes import alerts_router, channels_router, rules_router
from churn_alerts.config import Settings
from churn_alerts.worker import RUNTIME
from churn_shared.app import make_service_app
from churn_shared.runtime import broker_ready, database_ready
from churn_shared.security import TokenVerifier

VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None
) -> FastAPI:
    settings = settings or Settings()
    app = make_service_app(
        title="churn alerts",
        service="alerts",
        version=VERSION,
        lifespan=RUNTIME.lifespan(settings, token_verifier),
        readiness={"database": database_ready, "kafka": broker_ready},
        max_body_bytes=settings.max_body_bytes,
        description="Alert rules, channels, alerts and their signed webhook deliveries.",
    )
    app.include_router(alerts_router)
    app.include_router(rules_router)
    app.include_router(channels_router)
    return app


def app_from_env() -> FastAPI:
    return create_app(Settings())
