"""The customers service's process. ``uvicorn --factory churn_customers.main:app_from_env``."""

from __future__ import annotations

from fastapi import FastAPI

from churn_customers.api.routes import (
    cohorts_router,
    customers_router,
    events_router,
    imports_router,
    training_sets_router,
    workspace_router,
)
from churn_customers.config import Settings
from churn_customers.worker import RUNTIME
from churn_shared.runtime import ProcessState
from churn_shared.security import TokenVerifier


def create_app(
    settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None
) -> FastAPI:
    settings = settings or Settings()
    return RUNTIME.create_app(
        ProcessState(settings),
        title="churn customers",
        description="Customers, raw events and live feature profiles.",
        # Before the customers router: /v1/customers/imports/... and /v1/customers/export must
        # not match /{customer_id}.
        routers=(
            events_router,
            imports_router,
            workspace_router,
            customers_router,
            training_sets_router,
            cohorts_router,
        ),
        token_verifier=token_verifier,
        # Customer files may be larger than other bodies; the import route enforces its own limit.
        max_body_bytes=max(settings.max_body_bytes, settings.max_import_bytes + 64 * 1024),
    )


def app_from_env() -> FastAPI:
    return create_app(Settings())
