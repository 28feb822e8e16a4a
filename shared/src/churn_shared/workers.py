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
        self.loops: list[Background] = []

    def add_consumer(
        self,
        *,
        name: str,
        topics: Sequence[str],
        group_id: str,
        handler: BatchHandler,
        auto_offset_reset: str = "earliest",
    ) -> BatchConsumer:
        """A consumer on this process's broker, dead-lettering through its publisher."""
        consumer = BatchConsumer(
            topics=topics,
            group_id=group_id,
            handler=handler,
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            dlq_publisher=self._publisher,
            fetch_max_wait_ms=self._settings.kafka_fetch_max_wait_ms,
            auto_offset_reset=auto_offset_reset,
            name=name,
        )
        self.consumers.append(consumer)
        return consumer

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
        for consumer in reversed(self.consumers):
            await consumer.stop()
        for background in reversed(self.loops):
            await background.stop()
        await self.pruner.stop()
        await self.relay.stop()
