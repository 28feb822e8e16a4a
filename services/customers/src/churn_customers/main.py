"""The customers service's FastAPI app. ``uvicorn --factory churn_customers.main:app_from_env``."""

from __future__ import annotations

from fastapi import FastAPI

from churn_customers.api.routes import (
    customers_router,
    events_router,
    imports_router,
    training_sets_router,
)
from churn_customers.config import Settings
from churn_customers.worker import RUNTIME
from churn_shared.app import make_service_app
from churn_shared.runtime import broker_ready, database_ready
from churn_shared.security import TokenVerifier

VERSION = "0.1.0"


def create_app(
    settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None
) -> FastAPI:
    settings = settings or Settings()
    app = make_service_app(
        title="churn customers",
        service="customers",
        version=VERSION,
        lifespan=RUNTIME.lifespan(settings, token_verifier),
        readiness={"database": database_ready, "kafka": broker_ready},
        # Customer files may be larger than other bodies; the import route enforces its own limit.
        max_body_bytes=max(settings.max_body_bytes, settings.max_import_bytes + 64 * 1024),
        description="Customers, raw events and live feature profiles.",
    )
    app.include_router(events_router)
    # Before the customers router: /v1/customers/imports/... must not match /{customer_id}.
    app.include_router(imports_router)
    app.include_router(customers_router)
    app.include_router(training_sets_router)
    return app


def app_from_env() -> FastAPI:
    return create_app(Settings())
