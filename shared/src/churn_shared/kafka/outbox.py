"""Transactional outbox and consumer idempotency.

A service writes the events that accompany a change into its own ``outbox`` table in the same
transaction as the change (:func:`enqueue`); :class:`OutboxRelay` publishes them afterwards and
deletes what the broker acknowledged. Consumers record processed event ids in
``processed_events`` in the transaction that applies them (:func:`claim_event_ids`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.ext.asyncio import AsyncSession as SAAsyncSession

from churn_shared.db import UTCDateTime, utcnow
from churn_shared.kafka.envelope import Envelope
from churn_shared.kafka.metrics import PipelineMetrics
from churn_shared.kafka.producer import EventPublisher
from churn_shared.logging import get_logger, request_id_var
from churn_shared.loops import PeriodicLoop

_log = get_logger(__name__)

# Text, not bytes: the envelope is UTF-8 JSON, and aiomysql mis-escapes bytes parameters.
_JsonText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "outbox",
        metadata,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("message_key", sa.String(200), nullable=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("payload", _JsonText, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def processed_events_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "processed_events",
        metadata,
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", UTCDateTime(), nullable=False),
        sa.Index("ix_processed_events_processed_at", "processed_at"),
    )


async def enqueue(
    session: AsyncSession | SAAsyncSession,
    table: sa.Table,
    topic: str,
    envelopes: Iterable[Envelope],
    *,
    request_id: str | None = None,
) -> int:
    """Add envelopes to the outbox inside the caller's transaction."""
    now = utcnow()
    rid = request_id or request_id_var.get()
    rows = [
        {
            "topic": topic,
            "message_key": env.key,
            "event_id": env.event_id,
            "payload": env.to_bytes().decode(),
            "request_id": rid,
            "created_at": now,
        }
        for env in envelopes
    ]
    if rows:
        conn = await session.connection()
        await conn.execute(sa.insert(table), rows)
    return len(rows)


async def claim_event_ids(
    session: AsyncSession | SAAsyncSession,
    table: sa.Table,
    consumer: str,
    event_ids: Sequence[str],
) -> set[str]:
    """Record ``event_ids`` as processed by ``consumer``; return those not seen before."""
    if not event_ids:
        return set()
    unique = list(dict.fromkeys(event_ids))
    conn = await session.connection()
    seen = set(
        (
            await conn.execute(
                sa.select(table.c.event_id).where(
                    table.c.consumer == consumer, table.c.event_id.in_(unique)
                )
            )
        ).scalars()
    )
    fresh = [e for e in unique if e not in seen]
    if fresh:
        now = utcnow()
        await conn.execute(
            sa.insert(table),
            [{"consumer": consumer, "event_id": e, "processed_at": now} for e in fresh],
        )
    return set(fresh)


class OutboxRelay:
    """Publishes outbox rows in id order; woken by :meth:`notify` after a commit, or by polling
    (a :class:`~churn_shared.loops.PeriodicLoop` drains the table each round).

    Several replicas may run a relay: rows are claimed with ``FOR UPDATE SKIP LOCKED``.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        publisher: EventPublisher,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        drain_seconds: float = 10.0,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self._engine = engine
        #: Where each row's time from written to acknowledged goes (``None``: not measured).
        self.metrics = metrics
        self._table = table
        self._publisher = publisher
        self._batch_size = batch_size
        self._drain_seconds = drain_seconds
        self._loop = PeriodicLoop(
            "outbox-relay", self.drain, interval_seconds=poll_interval, error_backoff_seconds=1.0
        )
        self.published = 0

    def notify(self) -> None:
        self._loop.notify()

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
        # A last drain so a clean shutdown leaves nothing behind that was already committed;
        # bounded, because a slow broker must not hold the process past its grace period (what
        # is left stays in the outbox and goes out at the next start: delayed, never lost).
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._drain_seconds):
                while await self.relay_once():
                    pass

    async def drain(self) -> None:
        """Publish batches until one comes back short (the table is drained for now)."""
        while await self.relay_once() == self._batch_size:
            pass

    async def relay_once(self) -> int:
        """Publish one batch of pending rows; return how many were published."""
        t = self._table
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        t.c.id,
                        t.c.topic,
                        t.c.message_key,
                        t.c.payload,
                        t.c.request_id,
                        t.c.created_at,
                    )
                    .order_by(t.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            futures = []
            for row in rows:
                headers = [("x-request-id", row.request_id.encode())] if row.request_id else []
                futures.append(
                    await self._publisher.send_raw(
                        row.topic, row.payload.encode(), key=row.message_key, headers=headers
                    )
                )
            await asyncio.gather(*futures)
            if self.metrics is not None:
                self._observe(rows, time.time())
            await conn.execute(sa.delete(t).where(t.c.id.in_([r.id for r in rows])))
        self.published += len(rows)
        return len(rows)

    def _observe(self, rows: Sequence[Any], acknowledged: float) -> None:
        m = self.metrics
        assert m is not None
        m.relay_batch.labels(m.service).observe(len(rows))
        by_topic: dict[str, Any] = {}
        for row in rows:
            histogram = by_topic.get(row.topic)
            if histogram is None:
                histogram = by_topic[row.topic] = m.outbox_publish.labels(m.service, row.topic)
            # UTCDateTime reads aware UTC back.
            histogram.observe(max(0.0, acknowledged - row.created_at.timestamp()))


class ProcessedEventsPruner:
    """Deletes consumer idempotency records older than ``retention``, in batches, every
    ``interval_seconds`` (0 disables the loop).

    A duplicate can only arrive as a redelivery (a consumer that restarts before committing its
    offsets) or a relay retry: minutes, not days. A retention of days keeps the exactly-once
    guarantee while the table stays bounded instead of growing by every message ever consumed.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        *,
        retention: timedelta,
        interval_seconds: float,
        batch_size: int = 5000,
    ) -> None:
        self._engine = engine
        self._table = table
        self._retention = retention
        self._batch_size = batch_size
        self._loop = PeriodicLoop(
            "processed-events-pruner", self.prune_once, interval_seconds=interval_seconds
        )
        self.pruned = 0

    async def prune_once(self, now: datetime | None = None) -> int:
        t = self._table
        cutoff = (now or utcnow()) - self._retention
        total = 0
        while True:
            async with self._engine.begin() as conn:
                keys = (
                    await conn.execute(
                        sa.select(t.c.consumer, t.c.event_id)
                        .where(t.c.processed_at < cutoff)
                        .limit(self._batch_size)
                    )
                ).all()
                if keys:
                    await conn.execute(
                        sa.delete(t).where(
                            sa.tuple_(t.c.consumer, t.c.event_id).in_([tuple(k) for k in keys])
                        )
                    )
            total += len(keys)
            if len(keys) < self._batch_size:
                break
        self.pruned += total
        if total:
            _log.info("processed_events_pruned", rows=total)
        return total

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
