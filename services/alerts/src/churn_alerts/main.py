"""The alerts service's FastAPI app. ``uvicorn --factory churn_alerts.main:app_from_env``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from churn_alerts.api.routes import alerts_router, channels_router, rules_router
from churn_alerts.config import Settings
from churn_alerts.worker import AlertWorkers, open_resources
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
            workers: AlertWorkers | None = None
            if settings.run_workers:
                workers = AlertWorkers(
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
        title="churn alerts",
        service="alerts",
        version=VERSION,
        lifespan=lifespan,
        readiness={"database": _database_ready, "kafka": _broker_ready},
        max_body_bytes=settings.max_body_bytes,
        description="Alert rules, channels, alerts and their signed webhook deliveries.",
    )
    app.include_router(alerts_router)
    app.include_router(rules_router)
    app.include_router(channels_router)
    return app


def app_from_env() -> FastAPI:
    return create_app(Settings())
