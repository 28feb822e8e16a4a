"""The live-feed worker: a broadcast Kafka consumer (one consumer group per gateway instance).

Every gateway replica reads every alert and score from the latest offset and emits it to the
clients connected to that replica, so no cross-replica Socket.IO message queue is needed.
Start-up retries in the background until the broker answers; readiness reports whether
partitions are assigned.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from churn_gateway.config import Settings
from churn_gateway.events.handlers import LIVE_FEED_TOPICS
from churn_shared.kafka import BatchConsumer, BatchHandler, EventPublisher, ensure_topics
from churn_shared.kafka.metrics import PipelineMetrics
from churn_shared.logging import get_logger

_log = get_logger(__name__)


class LiveFeedWorker:
    def __init__(
        self,
        settings: Settings,
        handler: BatchHandler,
        *,
        retry_seconds: float = 2.0,
        metrics: PipelineMetrics | None = None,
    ) -> None:
        """``metrics``: where the last hop (alert raised → on the feed) is timed."""
        self._settings = settings
        self._metrics = metrics
        self._handler = handler
        self._retry_seconds = retry_seconds
        self.group_id = f"gateway-{uuid.uuid4().hex}"
        self.consumer: BatchConsumer | None = None
        self._publisher: EventPublisher | None = None
        self._starter: asyncio.Task[None] | None = None

    @property
    def assigned(self) -> bool:
        return self.consumer is not None and self.consumer.assigned.is_set()

    def start(self) -> None:
        """Connect in the background, so the HTTP side works while the broker is away."""
        self._starter = asyncio.create_task(self._start_until_connected(), name="live-feed-start")

    async def wait_started(self) -> None:
        if self._starter is not None:
            await asyncio.shield(self._starter)

    async def _start_until_connected(self) -> None:
        while True:
            try:
                await self._start_once()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _log.warning("live_feed_start_failed", error=repr(exc))
                await self._close()
                await asyncio.sleep(self._retry_seconds)

    async def _start_once(self) -> None:
        s = self._settings
        await ensure_topics(s.kafka_bootstrap_servers, LIVE_FEED_TOPICS, s.kafka_topic_partitions)
        self._publisher = EventPublisher(
            s.kafka_bootstrap_servers, client_id="gateway-dlq", linger_ms=s.kafka_linger_ms
        )
        await self._publisher.start()
        self.consumer = BatchConsumer(
            topics=LIVE_FEED_TOPICS,
            group_id=self.group_id,
            handler=self._handler,
            bootstrap_servers=s.kafka_bootstrap_servers,
            dlq_publisher=self._publisher,
            fetch_max_wait_ms=s.kafka_fetch_max_wait_ms,
            auto_offset_reset="latest",
            name="gateway-live-feed",
            metrics=self._metrics,
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
        )
        await self.consumer.start()
        _log.info("live_feed_started", group_id=self.group_id)

    async def _close(self) -> None:
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.consumer.stop()
            self.consumer = None
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.stop()
            self._publisher = None

    async def stop(self) -> None:
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
            self._starter = None
        await self._close()
