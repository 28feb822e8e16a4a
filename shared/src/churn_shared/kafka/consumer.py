"""An idempotent micro-batch consumer: getmany → one handler call (one transaction) → commit.

Every message that is not applied goes to ``<topic>.dlq`` with the reason in its ``x-error``
header (and the consumer's name in ``x-consumer``): one that is not a valid envelope, one whose
``event_type`` its topic does not carry, one its handler rejects (a :class:`Rejection`, such as
an event for a tenant nobody knows), and one that keeps failing on its own. The consumer
carries on.

A handler that cannot decide yet because something it needs is down raises
:class:`RetryLaterError`: nothing of the batch is dead-lettered or committed; the consumer goes
back to the batch's first offsets and tries again after a pause (up to
:data:`RETRY_LATER_MAX_SECONDS`), so the messages wait in the broker instead of being lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

from churn_shared.contracts import Topics, contracts_on
from churn_shared.kafka.envelope import Envelope, EnvelopeError
from churn_shared.kafka.metrics import PipelineMetrics
from churn_shared.kafka.producer import EventPublisher
from churn_shared.logging import get_logger, request_id_var

_log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One consumed envelope and where it came from."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A delivery its handler will not apply, and why: the consumer dead-letters it with
    ``reason`` in ``x-error``."""

    delivery: Delivery
    reason: str


class RetryLaterError(Exception):
    """Raised by a handler that cannot decide about a batch now (a service it asks is down):
    the consumer neither dead-letters nor commits it, and reads it again after a pause."""


#: The longest pause between two attempts at a batch whose handler said "retry later".
RETRY_LATER_MAX_SECONDS = 30.0

#: A batch handler applies what it can in one transaction and returns the deliveries it
#: rejects (or ``None``); it raises for a batch that failed, :class:`RetryLaterError` for one
#: that must wait.
BatchHandler = Callable[[Sequence[Delivery]], Awaitable[Sequence[Rejection] | None]]


class BatchConsumer:
    def __init__(
        self,
        *,
        topics: Sequence[str],
        group_id: str | None,
        handler: BatchHandler,
        bootstrap_servers: str,
        dlq_publisher: EventPublisher,
        fetch_max_wait_ms: int = 10,
        max_records: int = 500,
        auto_offset_reset: str = "earliest",
        name: str = "consumer",
        handler_attempts: int = 3,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        event_types: Mapping[str, Collection[str]] | None = None,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        self._topics = list(topics)
        #: Where the hop, broker and batch histograms go (``None``: not measured).
        self.metrics = metrics
        #: The event types each topic may carry (default: the contract registry's); a topic
        #: that is not listed is not checked.
        self._event_types: dict[str, frozenset[str]] = {
            topic: frozenset(c.event_type for c in contracts_on(topic)) for topic in self._topics
        }
        self._event_types.update(
            {topic: frozenset(types) for topic, types in (event_types or {}).items()}
        )
        self._handler = handler
        self._dlq = dlq_publisher
        self._max_records = max_records
        self._name = name
        self._attempts = handler_attempts
        # The client is made when the consumer starts: one built and never started (a process
        # that failed before its workers ran) would otherwise be left unclosed.
        self._options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": auto_offset_reset,
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "max_poll_records": max_records,
            "client_id": name,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
        }
        self._client: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._group = group_id is not None
        self.handled = 0
        self.dead_lettered = 0
        #: Batches put back because their handler said "retry later".
        self.postponed = 0
        self.assigned = asyncio.Event()

    @property
    def _consumer(self) -> AIOKafkaConsumer:
        if self._client is None:
            raise RuntimeError(f"the consumer {self._name} is not started")
        return self._client

    def assignment(self) -> set[tuple[str, int]]:
        """The ``(topic, partition)`` pairs this consumer holds now (none before it joined its
        group, or while the group rebalances)."""
        if self._client is None:
            return set()
        return {(tp.topic, tp.partition) for tp in self._client.assignment()}

    async def start(self) -> None:
        self._client = AIOKafkaConsumer(*self._topics, **self._options)
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_delay(30), wait=wait_exponential(max=2), reraise=True
            ):
                with attempt:
                    await self._client.start()
        except BaseException:
            await self._client.stop()  # a start that failed must not leave the client open
            self._client = None
            raise
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled ourselves
            # aiokafka's group coordination task ended cancelled: seen when the broker had
            # gone and the fetch loop, cancelled above, took a metadata update it shared with
            # that task down with it. The consumer then marked itself closed but left its
            # heartbeat, fetcher and connections running (retrying a dead broker forever).
            _log.warning("consumer_close_interrupted", consumer=self._name)
            await _finish_close(client)

    async def _run(self) -> None:
        pause = 0.0
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=500, max_records=self._max_records)
                if self._consumer.assignment():
                    self.assigned.set()
                if not batch:
                    continue
                arrived = time.time()
                deliveries: list[Delivery] = []
                for tp, records in batch.items():
                    for record in records:
                        rid = next(
                            (v.decode() for k, v in (record.headers or ()) if k == "x-request-id"),
                            None,
                        )
                        try:
                            env = Envelope.from_bytes(record.value)
                        except EnvelopeError as exc:
                            await self._dead_letter(
                                tp.topic, record.key, record.value, f"invalid envelope: {exc}", rid
                            )
                            continue
                        unknown = self._unknown_event_type(tp.topic, env)
                        if unknown:
                            await self._dead_letter(
                                tp.topic, record.key, record.value, unknown, rid
                            )
                            continue
                        deliveries.append(Delivery(env, tp.topic, tp.partition, record.offset, rid))
                if self.metrics is not None:
                    self._observe_hops(batch, deliveries, arrived)
                if deliveries:
                    started = time.perf_counter()
                    try:
                        await self._handle(deliveries)
                    except RetryLaterError as exc:
                        pause = min(RETRY_LATER_MAX_SECONDS, max(1.0, pause * 2))
                        self._rewind(deliveries)
                        self.postponed += 1
                        _log.warning(
                            "batch_postponed",
                            consumer=self._name,
                            size=len(deliveries),
                            reason=str(exc)[:300],
                            retry_in_seconds=pause,
                        )
                        await asyncio.sleep(pause)
                        continue
                    pause = 0.0
                    if self.metrics is not None:
                        m = self.metrics
                        m.handler.labels(m.service, self._name).observe(
                            time.perf_counter() - started
                        )
                        m.batch_size.labels(m.service, self._name).observe(len(deliveries))
                if self._group:
                    await self._consumer.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("consumer_loop_failed", consumer=self._name)
                await asyncio.sleep(1.0)

    def _observe_hops(
        self, batch: Mapping[Any, Sequence[Any]], deliveries: Sequence[Delivery], arrived: float
    ) -> None:
        """How long each message took to reach us: since the relay sent it (the record's
        broker timestamp) and since its envelope was made (its ``occurred_at``)."""
        m = self.metrics
        assert m is not None
        for tp, records in batch.items():
            broker = m.broker.labels(m.service, self._name, tp.topic)
            for record in records:
                if record.timestamp and record.timestamp > 0:
                    broker.observe(max(0.0, arrived - record.timestamp / 1000))
        hops: dict[str, Any] = {}
        for delivery in deliveries:
            hop = hops.get(delivery.topic)
            if hop is None:
                hop = hops[delivery.topic] = m.hop.labels(m.service, self._name, delivery.topic)
            hop.observe(max(0.0, arrived - delivery.envelope.occurred_at.timestamp()))

    def _unknown_event_type(self, topic: str, envelope: Envelope) -> str | None:
        """Why no handler of this topic could apply the envelope, or ``None``."""
        known = self._event_types.get(topic)
        if not known or envelope.event_type in known:
            return None
        return (
            f"unknown event type {envelope.event_type!r} on {topic} "
            f"(it carries {', '.join(sorted(known))})"
        )

    def _rewind(self, deliveries: Sequence[Delivery]) -> None:
        """Read ``deliveries`` again: each partition back to its first offset among them."""
        first: dict[TopicPartition, int] = {}
        for d in deliveries:
            tp = TopicPartition(d.topic, d.partition)
            first[tp] = min(first.get(tp, d.offset), d.offset)
        for tp, offset in first.items():
            self._consumer.seek(tp, offset)

    async def _handle(self, deliveries: Sequence[Delivery]) -> None:
        """Apply ``deliveries`` (isolating what fails), dead-letter what is rejected or keeps
        failing; :class:`RetryLaterError` goes up to the loop."""
        token = request_id_var.set(deliveries[0].request_id)
        try:
            rejected = await self._with_retries(deliveries)
            self.handled += len(deliveries) - len(rejected)
            await self._dead_letter_rejected(rejected)
            return
        except RetryLaterError:
            raise
        except Exception:
            _log.warning("batch_failed_isolating", consumer=self._name, size=len(deliveries))
        finally:
            request_id_var.reset(token)
        # Isolate the poison message(s): handle one at a time, dead-letter what still fails.
        for delivery in deliveries:
            token = request_id_var.set(delivery.request_id)
            try:
                rejected = await self._with_retries([delivery])
                self.handled += 1 - len(rejected)
                await self._dead_letter_rejected(rejected)
            except RetryLaterError:
                raise
            except Exception as exc:
                _log.exception(
                    "message_dead_lettered",
                    consumer=self._name,
                    event_id=delivery.envelope.event_id,
                )
                await self._dead_letter(
                    delivery.topic,
                    (delivery.envelope.key or "").encode() or None,
                    delivery.envelope.to_bytes(),
                    f"{type(exc).__name__}: {exc}",
                    delivery.request_id,
                )
            finally:
                request_id_var.reset(token)

    async def _with_retries(self, deliveries: Sequence[Delivery]) -> Sequence[Rejection]:
        # Only errors are tried again: tenacity's attempt swallows any exception, and a retry
        # on ``CancelledError`` would eat the cancellation of ``stop()`` and run the batch
        # again, leaving the consumer running (a shutdown that never ended).
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.1, max=1),
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(RetryLaterError),
            reraise=True,
        ):
            with attempt:
                return await self._handler(deliveries) or ()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _dead_letter_rejected(self, rejected: Sequence[Rejection]) -> None:
        for rejection in rejected:
            d = rejection.delivery
            _log.warning(
                "message_rejected",
                consumer=self._name,
                event_id=d.envelope.event_id,
                reason=rejection.reason[:300],
            )
            await self._dead_letter(
                d.topic,
                (d.envelope.key or "").encode() or None,
                d.envelope.to_bytes(),
                rejection.reason,
                d.request_id,
            )

    async def _dead_letter(
        self, topic: str, key: bytes | None, value: bytes | None, reason: str, rid: str | None
    ) -> None:
        headers = [
            ("x-error", reason[:1000].encode()),
            ("x-original-topic", topic.encode()),
            ("x-consumer", self._name.encode()),
        ]
        if rid:
            headers.append(("x-request-id", rid.encode()))
        fut = await self._dlq.send_raw(
            Topics.dead_letter(topic),
            value or b"",
            key=key.decode() if key else None,
            headers=headers,
        )
        await fut
        self.dead_lettered += 1


async def _finish_close(client: AIOKafkaConsumer) -> None:
    """The rest of ``AIOKafkaConsumer.stop()`` after its coordinator's close was interrupted
    (aiokafka 0.14 marks the consumer closed first, so a second ``stop()`` does nothing)."""
    coordinator = getattr(client, "_coordinator", None)
    if coordinator is not None:
        await _quietly(coordinator._stop_heartbeat_task())
        await _quietly(coordinator._stop_commit_offsets_refresh_task())
    if getattr(client, "_fetcher", None) is not None:
        await _quietly(client._fetcher.close())
    await _quietly(client._client.close())


async def _quietly(step: Awaitable[Any]) -> None:
    """Await a cleanup step; its own failure or cancellation does not stop the next one, but a
    cancellation of the caller still propagates."""
    try:
        await step
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:
        _log.debug("consumer_cleanup_step_failed", exc_info=True)
