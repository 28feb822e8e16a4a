"""The customers service's FastAPI app. ``uvicorn --factory churn_customers.main:app_from_env``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from churn_customers.api.routes import (
    customers_router,
    events_router,
    imports_router,
    training_sets_router,
)
from churn_customers.config import Settings
from churn_customers.worker import CustomerWorkers, open_resources
from churn_shared.app import make_service_app
from churn_shared.db import ping
from churn_shared.logging import configure_logging
from churn_shared.security import TokenVerifier, http_jwks_source

VERSION = "0.1.0"


async def _database_ready(app: FastAPI) -> None:
    await ping(app.state.engine)


async def _broker_ready(app: FastAPI) -> None:
    if not getattr(app.state, "publisher_started", False):
        raise RuntimeError("the Kafka producer is not started")


def create_app(
    settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        app.state.settings = settings
        app.state.token_verifier = token_verifier or TokenVerifier(
            http_jwks_source(settings.jwks_url),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
        )
        async with open_resources(settings) as resources:
            app.state.engine = resources.engine
            app.state.session_factory = resources.session_factory
            app.state.publisher = resources.publisher
            app.state.publisher_started = True
            workers: CustomerWorkers | None = None
            if settings.run_workers:
                workers = CustomerWorkers(
                    settings, resources.engine, resources.session_factory, resources.publisher
                )
                await workers.start()
            app.state.workers = workers
            app.state.outbox_relay = workers.relay if workers else None
            try:
                yield
            finally:
                app.state.publisher_started = False
                if workers is not None:
                    await workers.stop()

    app = make_service_app(
        title="churn customers",
        service="customers",
        version=VERSION,
        lifespan=lifespan,
        readiness={"database": _database_ready, "kafka": _broker_ready},
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
