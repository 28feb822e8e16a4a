"""How every process starts and stops, written once: the four services and the gateway.

A process is *declared* as a :class:`ServiceRuntime`: whether it has a database (its
migrations) and a broker (its topics), what else it opens (``setup``), which background
workers it runs and which readiness checks it adds. This module opens the resources in order
onto the process's typed state, closes them in reverse, and gives the FastAPI lifespan and the
worker-only entry point (``python -m churn_<service>.worker``) the same sequence, so the ways of
running a process cannot drift apart.

``app.state`` is a :class:`ProcessState` (a subclass per service adds its own resources), so
dependencies read typed attributes instead of ``getattr`` with defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import State

from churn_shared.app import ReadinessCheck, make_service_app
from churn_shared.db import create_engine, create_session_factory, ping, run_migrations
from churn_shared.kafka import EventPublisher, ensure_topics
from churn_shared.kafka.metrics import PipelineMetrics
from churn_shared.logging import configure_logging, get_logger
from churn_shared.security import TokenVerifier, http_jwks_source
from churn_shared.settings import ServiceSettings

_log = get_logger(__name__)


class Notifiable(Protocol):
    """Woken after a commit that wrote to the outbox (the relay)."""

    def notify(self) -> None: ...


class Workers(Protocol):
    """A process's background work (consumers, outbox relay, loops)."""

    relay: Any

    def instrument(self, metrics: PipelineMetrics) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class ProcessState(State):
    """The typed ``app.state`` of a process: what the runtime opens. Services subclass it to
    declare their own resources (attributes only; set them in ``setup``)."""

    settings: ServiceSettings
    token_verifier: TokenVerifier
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    publisher: EventPublisher
    #: Whether the broker producer is started (readiness).
    broker_started: bool
    #: The relay woken after a request commits outbox rows (``None`` without workers).
    outbox_relay: Notifiable | None
    workers: Workers | None
    #: The registry ``/metrics`` serves (set by the app; ``None`` for a worker-only process).
    metrics_registry: CollectorRegistry | None

    def __init__(self, settings: ServiceSettings) -> None:
        super().__init__()
        self.settings = settings
        self.metrics_registry = None
        self.broker_started = False
        self.outbox_relay = None
        self.workers = None


@dataclass(frozen=True)
class ServiceResources:
    """What the runtime opened, handed to a service's ``make_workers``; ``state`` holds what
    the service's own ``setup`` opened too (the prediction workers score with its models)."""

    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    publisher: EventPublisher
    state: Any = None


StateCheck = Callable[[Any], Awaitable[None]]


def package_version(distribution: str) -> str:
    """The installed version of ``distribution`` (the one way every process reports it)."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "0.0.0"


async def _database_ready(state: ProcessState) -> None:
    await ping(state.engine)


async def _broker_ready(state: ProcessState) -> None:
    if not state.broker_started:
        raise RuntimeError("the Kafka producer is not started")


@dataclass(frozen=True)
class ServiceRuntime:
    """The declaration of one process; the sequence around it is the same everywhere.

    * ``migrations``: the Alembic script location; ``None`` for a process without a database.
    * ``topics``: the topics it needs; ``None`` for a process without a broker producer.
    * ``setup(state, stack)``: opens the process's own resources onto ``state`` after the
      database and broker, registering their cleanup on ``stack`` (closed in reverse).
    * ``make_workers(settings, resources)``: its background workers (run when ``run_workers``).
    * ``checks``: readiness checks beyond the database and the broker, ``name → check(state)``;
      ``worker_checks`` apply only when the process runs its workers.
    """

    client_id: str
    migrations: str | None = None
    topics: Sequence[str] | None = None
    make_workers: Callable[[Any, ServiceResources], Workers] | None = None
    setup: Callable[[Any, AsyncExitStack], Awaitable[None]] | None = None
    checks: Mapping[str, StateCheck] = field(default_factory=dict)
    #: Readiness checks that apply only when the process runs its workers (``run_workers``).
    worker_checks: Mapping[str, StateCheck] = field(default_factory=dict)
    #: Verify access tokens against the JWKS at ``settings.jwks_url`` (auth serves its own).
    verify_tokens: bool = True

    def readiness(self, settings: ServiceSettings) -> dict[str, StateCheck]:
        checks: dict[str, StateCheck] = {}
        if self.migrations is not None:
            checks["database"] = _database_ready
        if self.topics is not None:
            checks["broker"] = _broker_ready
        checks.update(self.checks)
        if settings.run_workers:
            checks.update(self.worker_checks)
        return checks

    @asynccontextmanager
    async def open(
        self, state: ProcessState, *, run_workers: bool | None = None
    ) -> AsyncIterator[None]:
        """The database (migrated when ``auto_migrate``), the broker, the service's own
        resources and, when ``run_workers`` (default: the setting), its workers; all closed in
        reverse on exit."""
        settings = state.settings
        if run_workers is None:
            run_workers = settings.run_workers
        async with AsyncExitStack() as stack:
            if self.migrations is not None:
                engine = create_engine(settings.database_url.get_secret_value())
                stack.push_async_callback(engine.dispose)
                if settings.auto_migrate:
                    await run_migrations(engine, self.migrations)
                state.engine = engine
                state.session_factory = create_session_factory(engine)
            if self.topics is not None:
                await ensure_topics(
                    settings.kafka_bootstrap_servers, self.topics, settings.kafka_topic_partitions
                )
                publisher = EventPublisher(
                    settings.kafka_bootstrap_servers,
                    client_id=self.client_id,
                    linger_ms=settings.kafka_linger_ms,
                )
                await publisher.start()
                stack.push_async_callback(publisher.stop)
                state.publisher = publisher
                state.broker_started = True
                stack.callback(setattr, state, "broker_started", False)
            if self.setup is not None:
                await self.setup(state, stack)
            if self.make_workers is not None and run_workers:
                workers = self.make_workers(
                    settings,
                    ServiceResources(state.engine, state.session_factory, state.publisher, state),
                )
                if state.metrics_registry is not None:
                    workers.instrument(
                        PipelineMetrics(state.metrics_registry, service=settings.service_name)
                    )
                await workers.start()
                stack.push_async_callback(workers.stop)
                state.workers = workers
                state.outbox_relay = workers.relay
            yield

    def lifespan(
        self, state: ProcessState, token_verifier: TokenVerifier | None = None
    ) -> Callable[[FastAPI], Any]:
        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            settings = state.settings
            configure_logging(settings.service_name, settings.log_level, settings.log_json)
            if token_verifier is not None:
                state.token_verifier = token_verifier
            elif self.verify_tokens:
                state.token_verifier = TokenVerifier(
                    http_jwks_source(settings.jwks_url),
                    issuer=settings.token_issuer,
                    audience=settings.token_audience,
                )
            async with self.open(state):
                # Load the token keys now, in the background (auth may start after us), so the
                # first request does not wait for, or fail on, the fetch.
                warm_up = (
                    asyncio.create_task(state.token_verifier.warm_up(), name="jwks-warm-up")
                    if hasattr(state, "token_verifier")
                    else None
                )
                try:
                    yield
                finally:
                    if warm_up is not None:
                        warm_up.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await warm_up

        return lifespan

    def create_app(
        self,
        state: ProcessState,
        *,
        title: str,
        description: str,
        routers: Sequence[APIRouter] = (),
        token_verifier: TokenVerifier | None = None,
        max_body_bytes: int | None = None,
        trust_request_id: bool = True,
    ) -> FastAPI:
        """The process's FastAPI app, its ``app.state`` being ``state``."""
        settings = state.settings
        readiness: dict[str, ReadinessCheck] = {
            name: _on_state(check) for name, check in self.readiness(settings).items()
        }
        app = make_service_app(
            title=title,
            service=settings.service_name,
            version=package_version(self.client_id),
            lifespan=self.lifespan(state, token_verifier),
            readiness=readiness,
            max_body_bytes=max_body_bytes or settings.max_body_bytes,
            trust_request_id=trust_request_id,
            description=description,
            state=state,
        )
        for router in routers:
            app.include_router(router)
        return app

    async def run_workers(self, settings: ServiceSettings) -> None:
        """Run the process without its HTTP API (workers only) until SIGTERM or SIGINT.

        Either signal closes the workers in order (consumers leave their group, the relay
        drains) as uvicorn does for an API process: SIGTERM is what Kubernetes and
        ``docker stop`` send, and without a handler Python would die at once."""
        import signal

        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            async with self.open(ProcessState(settings), run_workers=True):
                _log.info("workers_started", client_id=self.client_id)
                await stop.wait()
                _log.info("workers_stopping")
            _log.info("workers_stopped")
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


def _on_state(check: StateCheck) -> ReadinessCheck:
    async def run(app: FastAPI) -> None:
        await check(app.state)

    return run
