"""A service process's background work, wired once: the outbox relay, the pruning of consumer
idempotency records, the Kafka consumers and any other loops, started and stopped in one order.

Services declare what differs (their tables, consumers and loops); the set-up that every
service repeated (a relay on the outbox, a pruner with the retention settings, consumers on
the broker with the dead-letter publisher and fetch wait) lives here.

Start: relay, pruner, loops, then the consumers (group joins in parallel: seconds each on
Tansu). Stop is the reverse: the consumers first (no new input), then the loops, the pruner,
and the relay last, so its final drain publishes what everything else committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from churn_shared.kafka import (
    BatchConsumer,
    BatchHandler,
    EventPublisher,
    OutboxRelay,
    ProcessedEventsPruner,
)
from churn_shared.kafka.metrics import PipelineMetrics
from churn_shared.settings import ServiceSettings


class Background(Protocol):
    """A loop the process runs beside its consumers (refresher, delivery worker …)."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


BackgroundT = TypeVar("BackgroundT", bound=Background)


class ServiceWorkers:
    """One process's relay, pruner, consumers and loops (``churn_shared.runtime.Workers``)."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        engine: AsyncEngine,
        publisher: EventPublisher,
        outbox: sa.Table,
        processed_events: sa.Table,
    ) -> None:
        self._settings = settings
        self._publisher = publisher
        self.relay = OutboxRelay(engine, outbox, publisher)
        self.pruner = ProcessedEventsPruner(
            engine,
            processed_events,
            retention=timedelta(hours=settings.processed_events_retention_hours),
            interval_seconds=settings.housekeeping_interval_seconds,
        )
        self.consumers: list[BatchConsumer] = []
        self._metrics: PipelineMetrics | None = None
        self.loops: list[Background] = []

    def add_consumer(
        self,
        *,
        name: str,
        topics: Sequence[str],
        group_id: str,
        handler: BatchHandler,
        auto_offset_reset: str = "earliest",
        background: bool = False,
    ) -> BatchConsumer:
        """A consumer on this process's broker, dead-lettering through its publisher.

        ``background``: not on the way from an event to its alert, so it waits longer for each
        fetch (``kafka_background_fetch_max_wait_ms``) and costs the broker less when idle."""
        consumer = BatchConsumer(
            topics=topics,
            group_id=group_id,
            handler=handler,
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            dlq_publisher=self._publisher,
            fetch_max_wait_ms=(
                self._settings.kafka_background_fetch_max_wait_ms
                if background
                else self._settings.kafka_fetch_max_wait_ms
            ),
            max_records=self._settings.kafka_max_poll_records,
            auto_offset_reset=auto_offset_reset,
            name=name,
            session_timeout_ms=self._settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=self._settings.kafka_heartbeat_interval_ms,
        )
        consumer.metrics = self._metrics
        self.consumers.append(consumer)
        return consumer

    def instrument(self, metrics: PipelineMetrics) -> None:
        """Time the relay's and the consumers' hops into ``metrics`` (the ``/metrics`` of the
        process's app), before :meth:`start`."""
        self._metrics = metrics
        self.relay.metrics = metrics
        for consumer in self.consumers:
            consumer.metrics = metrics

    def add_loop(self, background: BackgroundT) -> BackgroundT:
        """Run ``background`` with the process (started before the consumers, stopped after)."""
        self.loops.append(background)
        return background

    async def start(self) -> None:
        self.relay.start()
        self.pruner.start()
        for background in self.loops:
            background.start()
        await asyncio.gather(*(consumer.start() for consumer in self.consumers))

    async def stop(self) -> None:
        """Stop everything, in reverse order of start, even if one part fails to stop (its
        error is raised after the rest have stopped)."""
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self.relay.stop)
            stack.push_async_callback(self.pruner.stop)
            for background in self.loops:
                stack.push_async_callback(background.stop)
            for consumer in self.consumers:
                stack.push_async_callback(consumer.stop)
