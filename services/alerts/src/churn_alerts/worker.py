"""Background work of the alerts service: the scores consumer, the outbox relay and the webhook
delivery worker. Started by the API's lifespan when ``run_workers`` is set, or on its own with
``python -m churn_alerts.worker``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.config import Settings
from churn_alerts.events.handlers import ScoreHandler
from churn_alerts.models import outbox, processed_events
from churn_alerts.service import DeliveryResult, DeliveryService, RetryPolicy, WebhookJob
from churn_alerts.signing import DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature_header
from churn_shared.contracts import Topics
from churn_shared.db import unit_of_work
from churn_shared.kafka import BatchConsumer, EventPublisher, OutboxRelay, ProcessedEventsPruner
from churn_shared.logging import get_logger
from churn_shared.runtime import ServiceResources, ServiceRuntime

_log = get_logger(__name__)


class WebhookDeliveryWorker:
    """Posts due deliveries, signed, and reschedules failures with exponential backoff.

    Round: claim (one short transaction, ``FOR UPDATE SKIP LOCKED``, the claimed rows leased
    for a while) → POST concurrently, outside any transaction → record results (one transaction).
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._factory = session_factory
        self._batch_size = settings.delivery_batch_size
        self._poll = settings.delivery_poll_interval_seconds
        self._policy = RetryPolicy(
            max_attempts=settings.max_delivery_attempts,
            base_seconds=settings.delivery_backoff_base_seconds,
            max_seconds=settings.delivery_backoff_max_seconds,
            lease_seconds=settings.delivery_timeout_seconds * 3 + 10,
        )
        self._client = httpx.AsyncClient(
            timeout=settings.delivery_timeout_seconds,
            follow_redirects=False,
            transport=transport,
            headers={"User-Agent": "churn-alerts-webhooks/1"},
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.aclose()

    async def _run(self) -> None:
        while True:
            try:
                while await self.deliver_once() == self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("webhook_delivery_round_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()

    async def deliver_once(self) -> int:
        """One round; returns how many deliveries were attempted."""
        async with unit_of_work(self._factory) as session:
            jobs = await DeliveryService(session, self._policy).claim_due(self._batch_size)
        if not jobs:
            return 0
        results = await asyncio.gather(*(self._post(job) for job in jobs))
        async with unit_of_work(self._factory) as session:
            await DeliveryService(session, self._policy).record(results)
        ok = sum(r.ok for r in results)
        self.delivered += ok
        _log.info("webhooks_posted", attempted=len(results), delivered=ok)
        return len(jobs)

    async def _post(self, job: WebhookJob) -> DeliveryResult:
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(job.secret, int(time.time()), job.body),
            EVENT_HEADER: "churn_alert",
            DELIVERY_HEADER: job.delivery_id,
        }
        try:
            response = await self._client.post(job.url, content=job.body, headers=headers)
        except httpx.HTTPError as exc:
            return DeliveryResult(
                job.delivery_id, job.attempt, False, f"{type(exc).__name__}: {exc}"
            )
        if 200 <= response.status_code < 300:
            return DeliveryResult(job.delivery_id, job.attempt, True)
        return DeliveryResult(job.delivery_id, job.attempt, False, f"HTTP {response.status_code}")


class AlertWorkers:
    """The consumer, relay and delivery worker of one process."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
    ) -> None:
        self.relay = OutboxRelay(engine, outbox, publisher)
        self.pruner = ProcessedEventsPruner(
            engine,
            processed_events,
            retention=timedelta(hours=settings.processed_events_retention_hours),
            interval_seconds=settings.housekeeping_interval_seconds,
        )
        self.delivery = WebhookDeliveryWorker(session_factory, settings)
        self.consumer = BatchConsumer(
            topics=[Topics.CHURN_SCORES],
            group_id=settings.consumer_group,
            handler=ScoreHandler(session_factory, self._committed),
            bootstrap_servers=settings.kafka_bootstrap_servers,
            dlq_publisher=publisher,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            name="alerts-scores",
        )

    def _committed(self, has_deliveries: bool) -> None:
        self.relay.notify()
        if has_deliveries:
            self.delivery.notify()

    async def start(self) -> None:
        self.relay.start()
        self.pruner.start()
        self.delivery.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.pruner.stop()
        await self.consumer.stop()
        await self.delivery.stop()
        await self.relay.stop()


MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


def _workers(settings: Settings, resources: ServiceResources) -> AlertWorkers:
    return AlertWorkers(settings, resources.engine, resources.session_factory, resources.publisher)


#: How the service process starts and stops (``churn_shared.runtime``): the API's lifespan and
#: ``python -m churn_alerts.worker`` (workers alone, no HTTP) share it.
RUNTIME = ServiceRuntime(
    migrations=MIGRATIONS,
    topics=(Topics.CHURN_SCORES, Topics.CHURN_ALERTS),
    client_id="churn-alerts",
    make_workers=_workers,
)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(RUNTIME.run_workers(Settings()))
