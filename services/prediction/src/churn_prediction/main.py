"""The prediction service's app: ``create_app(settings)`` and ``app_from_env()`` for uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from churn_prediction.api.routes import models_router, predictions_router, rules_router
from churn_prediction.clients import CustomerFeaturesClient, TrainingSetClient
from churn_prediction.config import Settings
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.training_jobs.runner import TrainingJobRunner
from churn_prediction.worker import TOPICS, ScoringWorker
from churn_shared.app import make_service_app
from churn_shared.db import (
    create_engine,
    create_session_factory,
    ping,
    run_migrations,
    unit_of_work,
)
from churn_shared.http import service_client
from churn_shared.kafka import EventPublisher, ensure_topics
from churn_shared.logging import configure_logging, get_logger
from churn_shared.security import (
    ApiKeyExchanger,
    TokenVerifier,
    api_key_verify_url,
    http_jwks_source,
)

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
_log = get_logger(__name__)


async def _database_ready(app: FastAPI) -> None:
    await ping(app.state.engine)


async def _broker_ready(app: FastAPI) -> None:
    if not getattr(app.state, "publisher_started", False):
        raise RuntimeError("the Kafka producer is not started")


async def _model_ready(app: FastAPI) -> None:
    models = getattr(app.state, "serving_models", None)
    if models is None or not models.loaded:
        raise RuntimeError("no model is loaded")


def create_app(
    settings: Settings | None = None,
    *,
    token_verifier: TokenVerifier | None = None,
    customers_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app; the lifespan owns every resource. ``customers_transport`` replaces the
    HTTP transport to the customers service (tests fake it with ``httpx.MockTransport``)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        state = app.state
        state.settings = settings
        state.publisher_started = False
        state.outbox_relay = None
        engine = create_engine(settings.database_url.get_secret_value())
        state.engine = engine
        state.session_factory = factory = create_session_factory(engine)
        state.token_verifier = token_verifier or TokenVerifier(
            http_jwks_source(settings.jwks_url),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
        )
        # Integrators may call this service directly with an API key (exchanged at auth).
        state.auth_client = service_client(timeout=5.0)
        state.api_key_exchanger = ApiKeyExchanger(
            state.auth_client,
            api_key_verify_url(settings.auth_url, settings.jwks_url),
            state.token_verifier,
            ttl_seconds=settings.api_key_cache_seconds,
            failure_ttl_seconds=settings.api_key_failure_cache_seconds,
        )
        publisher = EventPublisher(
            settings.kafka_bootstrap_servers,
            client_id="churn-prediction",
            linger_ms=settings.kafka_linger_ms,
        )
        state.publisher = publisher
        state.customers_client = CustomerFeaturesClient(
            service_client(
                settings.customers_url,
                timeout=settings.customers_timeout_seconds,
                transport=customers_transport,
            )
        )
        state.training_sets = TrainingSetClient(
            state.customers_client.http, timeout_seconds=settings.training_set_timeout_seconds
        )
        state.rules_cache = {}
        state.job_runner = None
        worker: ScoringWorker | None = None
        try:
            if settings.auto_migrate:
                await run_migrations(engine, MIGRATIONS)
            try:
                async with unit_of_work(factory) as session:
                    await ModelRegistryService(session).ensure_default_model(settings)
            except IntegrityError:
                _log.info("default_model_registered_concurrently")
            async with unit_of_work(factory) as session:
                state.serving_models = await ModelRegistryService(session).load_champions(
                    num_threads=settings.model_num_threads
                )
            await ensure_topics(
                settings.kafka_bootstrap_servers, TOPICS, settings.kafka_topic_partitions
            )
            await publisher.start()
            state.publisher_started = True
            if settings.run_workers:
                worker = ScoringWorker(
                    settings=settings,
                    engine=engine,
                    session_factory=factory,
                    publisher=publisher,
                    models=state.serving_models,
                )
                await worker.start()
                state.outbox_relay = worker.relay
            state.worker = worker
            state.job_runner = TrainingJobRunner(
                settings=settings,
                session_factory=factory,
                training_sets=state.training_sets,
                models=state.serving_models,
                notify=worker.relay.notify if worker is not None else None,
            )
            yield
        finally:
            if state.job_runner is not None:
                await state.job_runner.stop()
            if worker is not None:
                await worker.stop()
            if state.publisher_started:
                await publisher.stop()
                state.publisher_started = False
            await state.customers_client.aclose()
            await state.auth_client.aclose()
            await engine.dispose()

    app = make_service_app(
        title="Churn prediction service",
        service="prediction",
        version="0.1.0",
        lifespan=lifespan,
        readiness={"database": _database_ready, "broker": _broker_ready, "model": _model_ready},
        max_body_bytes=settings.max_body_bytes,
        description="Model registry, churn scoring (single, batch, streaming) and explanations.",
    )
    app.state.settings = settings
    app.include_router(predictions_router)
    app.include_router(models_router)
    app.include_router(rules_router)
    return app


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory churn_prediction.main:app_from_env``."""
    return create_app(Settings())
