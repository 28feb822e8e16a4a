"""How a database-and-Kafka service process starts and stops, written once.

A service supplies what differs (its migrations, topics, client id and how to build its
workers); this module opens the resources in order, closes them in reverse, and gives the
FastAPI lifespan and the worker-only entry point (``python -m churn_<service>.worker``) the
same sequence, so the two ways of running a service cannot drift apart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_shared.db import create_engine, create_session_factory, ping, run_migrations
from churn_shared.kafka import EventPublisher, ensure_topics
from churn_shared.logging import configure_logging
from churn_shared.security import TokenVerifier, http_jwks_source
from churn_shared.settings import ServiceSettings


@dataclass(frozen=True)
class ServiceResources:
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]
    publisher: EventPublisher


class Workers(Protocol):
    """A service's background work (consumers, outbox relay, loops) in one process."""

    relay: Any

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass(frozen=True)
class ServiceRuntime(Generic[SettingsT]):
    """What differs between services; the sequence around it is the same everywhere."""

    migrations: str
    topics: Sequence[str]
    client_id: str
    make_workers: Callable[[SettingsT, ServiceResources], Workers]

    @asynccontextmanager
    async def resources(self, settings: SettingsT) -> AsyncIterator[ServiceResources]:
        """The database (migrated when ``auto_migrate``), the topics and a started publisher."""
        engine = create_engine(settings.database_url.get_secret_value())
        try:
            if settings.auto_migrate:
                await run_migrations(engine, self.migrations)
            await ensure_topics(
                settings.kafka_bootstrap_servers, self.topics, settings.kafka_topic_partitions
            )
            publisher = EventPublisher(
                settings.kafka_bootstrap_servers,
                client_id=self.client_id,
                linger_ms=settings.kafka_linger_ms,
            )
            await publisher.start()
            try:
                yield ServiceResources(engine, create_session_factory(engine), publisher)
            finally:
                await publisher.stop()
        finally:
            await engine.dispose()

    def lifespan(
        self, settings: SettingsT, token_verifier: TokenVerifier | None = None
    ) -> Callable[[FastAPI], Any]:
        """The FastAPI lifespan: resources on ``app.state``, workers when ``run_workers``."""

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            configure_logging(settings.service_name, settings.log_level, settings.log_json)
            app.state.settings = settings
            app.state.token_verifier = token_verifier or TokenVerifier(
                http_jwks_source(settings.jwks_url),
                issuer=settings.token_issuer,
                audience=settings.token_audience,
            )
            async with self.resources(settings) as resources:
                app.state.engine = resources.engine
                app.state.session_factory = resources.session_factory
                app.state.publisher = resources.publisher
                app.state.publisher_started = True
                workers = self.make_workers(settings, resources) if settings.run_workers else None
                if workers is not None:
                    await workers.start()
                app.state.workers = workers
                app.state.outbox_relay = workers.relay if workers else None
                try:
                    yield
                finally:
                    app.state.publisher_started = False
                    if workers is not None:
                        await workers.stop()

        return lifespan

    async def run_workers(self, settings: SettingsT) -> None:
        """Run the workers alone (no HTTP API) until cancelled."""
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        async with self.resources(settings) as resources:
            workers = self.make_workers(settings, resources)
            await workers.start()
            try:
                await asyncio.Event().wait()
            finally:
                await workers.stop()


async def database_ready(app: FastAPI) -> None:
    await ping(app.state.engine)


async def broker_ready(app: FastAPI) -> None:
    if not getattr(app.state, "publisher_started", False):
        raise RuntimeError("the Kafka producer is not started")
