"""The prediction service's process: ``create_app(settings)``; ``app_from_env()`` for uvicorn.

Beyond the database and the broker (the shared runtime) it opens the HTTP clients to auth (API
keys of integrators calling it directly) and customers (feature profiles, training sets), loads
every tenant's champion model into memory (registering the default model on first start), and
runs the training-job runner; its workers score feature snapshots with those models.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError

from churn_prediction.api.job_routes import jobs_router
from churn_prediction.api.protocol_routes import mlflow_router, oip_router, protocol_edge_error
from churn_prediction.api.routes import models_router, predictions_router, rules_router
from churn_prediction.batch_jobs.runner import PredictionJobRunner
from churn_prediction.clients import (
    CustomerFeaturesClient,
    ScoringInputsClient,
    TrainingSetClient,
)
from churn_prediction.config import Settings
from churn_prediction.dependencies import PredictionState
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.training_jobs.runner import TrainingJobRunner
from churn_prediction.worker import TOPICS, ScoringWorker
from churn_shared.db import unit_of_work
from churn_shared.http import service_client
from churn_shared.logging import get_logger
from churn_shared.middleware import EDGE_ERRORS, STREAMED_BODIES
from churn_shared.runtime import ServiceResources, ServiceRuntime
from churn_shared.security import ApiKeyExchanger, TokenVerifier, api_key_verify_url

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
_log = get_logger(__name__)


async def _open(state: PredictionState, stack: AsyncExitStack) -> None:
    settings = state.settings
    # Integrators may call this service directly with an API key (exchanged at auth).
    state.auth_client = service_client(timeout=5.0)
    stack.push_async_callback(state.auth_client.aclose)
    state.api_key_exchanger = ApiKeyExchanger(
        state.auth_client,
        api_key_verify_url(settings.auth_url, settings.jwks_url),
        state.token_verifier,
        ttl_seconds=settings.api_key_cache_seconds,
        failure_ttl_seconds=settings.api_key_failure_cache_seconds,
    )
    state.customers_client = CustomerFeaturesClient(
        service_client(
            settings.customers_url,
            timeout=settings.customers_timeout_seconds,
            transport=state.customers_transport,
        )
    )
    stack.push_async_callback(state.customers_client.aclose)
    state.training_sets = TrainingSetClient(
        state.customers_client.http, timeout_seconds=settings.training_set_timeout_seconds
    )
    try:
        async with unit_of_work(state.session_factory) as session:
            await ModelRegistryService(session).ensure_default_model(settings)
    except IntegrityError:
        _log.info("default_model_registered_concurrently")
    async with unit_of_work(state.session_factory) as session:
        state.serving_models = await ModelRegistryService(session).load_champions(
            num_threads=settings.model_num_threads
        )

    def wake_relay() -> None:
        if state.outbox_relay is not None:
            state.outbox_relay.notify()

    state.job_runner = TrainingJobRunner(
        settings=settings,
        session_factory=state.session_factory,
        training_sets=state.training_sets,
        models=state.serving_models,
        notify=wake_relay,
    )
    stack.push_async_callback(state.job_runner.stop)
    # Uploads are stored here; the jobs' claim loop runs with the workers (``_workers``).
    state.prediction_jobs = PredictionJobRunner(
        settings=settings,
        session_factory=state.session_factory,
        notify=wake_relay,
        scoring_inputs=ScoringInputsClient(state.customers_client.http),
    )
    stack.push_async_callback(state.prediction_jobs.stop)


async def _model_ready(state: PredictionState) -> None:
    if not hasattr(state, "serving_models") or not state.serving_models.loaded:
        raise RuntimeError("no model is loaded")


def _workers(settings: Settings, resources: ServiceResources) -> ScoringWorker:
    state: PredictionState = resources.state
    workers = ScoringWorker(
        settings=settings,
        engine=resources.engine,
        session_factory=resources.session_factory,
        publisher=resources.publisher,
        models=state.serving_models,
    )
    # File batch jobs are claimed and run where the workers run, not in every API process.
    workers.add_loop(state.prediction_jobs)
    return workers


RUNTIME = ServiceRuntime(
    client_id="churn-prediction",
    migrations=MIGRATIONS,
    topics=TOPICS,
    setup=_open,
    make_workers=_workers,
    checks={"model": _model_ready},
)


def create_app(
    settings: Settings | None = None,
    *,
    token_verifier: TokenVerifier | None = None,
    customers_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app. ``customers_transport`` replaces the HTTP transport to the customers
    service (tests fake it with ``httpx.MockTransport``)."""
    settings = settings or Settings()
    state = PredictionState(settings, customers_transport=customers_transport)
    # File uploads stream to disk instead of being held in memory.
    setattr(state, STREAMED_BODIES, {"/v1/predictions/jobs": settings.max_job_bytes})
    # A body over the limit on an inference protocol's path: that protocol's error form.
    setattr(state, EDGE_ERRORS, protocol_edge_error)
    return RUNTIME.create_app(
        state,
        title="Churn prediction service",
        description="Model registry, churn scoring (single, batch, streaming) and explanations.",
        routers=(
            jobs_router,
            predictions_router,
            models_router,
            rules_router,
            oip_router,
            mlflow_router,
        ),
        token_verifier=token_verifier,
    )


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory churn_prediction.main:app_from_env``."""
    return create_app(Settings())
