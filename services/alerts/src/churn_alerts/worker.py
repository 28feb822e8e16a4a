"""Background work of the alerts service: the scores consumer, the outbox relay and the webhook
delivery worker. Started by the API's lifespan when ``run_workers`` is set, or on its own with
``python -m churn_alerts.worker``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.config import Settings
from churn_alerts.delivery import DeliveryResult, Pace, RetryPolicy, WebhookJob
from churn_alerts.events.handlers import churn_scores_handler, customer_deleted_handler
from churn_alerts.models import outbox, processed_events
from churn_alerts.sending import MessageSender
from churn_alerts.service import AlertService, DeliveryService, DigestService, ScoresOutcome
from churn_alerts.users import HttpUserDirectory
from churn_alerts.webhook_transport import Resolver
from churn_shared.contracts import ChurnScoreComputedV1, CustomerDeletedV1, Topics
from churn_shared.db import unit_of_work, utcnow
from churn_shared.http import service_client
from churn_shared.kafka import EventPublisher
from churn_shared.logging import get_logger
from churn_shared.loops import PeriodicLoop
from churn_shared.runtime import ServiceResources, ServiceRuntime
from churn_shared.security import JWKS_PATH
from churn_shared.workers import ServiceWorkers

_log = get_logger(__name__)


#: How long a shutdown waits for the cancelled sends of an abandoned round to be recorded.
_RECORD_SECONDS = 10.0
_NOT_SENT = "interrupted at shutdown before the request was sent; it will be sent again"
_UNKNOWN = (
    "interrupted at shutdown after the request was sent, before the answer: the receiver may"
    " have it, so it is not sent again"
)


class _Send:
    """One POST in flight and how far it got, from httpcore's trace events."""

    __slots__ = ("job", "started", "writing")

    def __init__(self, job: WebhookJob) -> None:
        self.job = job
        self.started = False
        #: ``None`` until a trace event arrives (a transport without httpcore sends none).
        self.writing: bool | None = None

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        if self.writing is None:
            self.writing = False
        # From the moment the body is being written the receiver may end up with the whole
        # request; only before that is a resend certainly not a duplicate.
        if event.endswith(".send_request_body.started"):
            self.writing = True

    def interrupted(self) -> DeliveryResult:
        job = self.job
        if not self.started or self.writing is False:
            return DeliveryResult(job.delivery_id, job.attempt, "not_sent", _NOT_SENT)
        return DeliveryResult(job.delivery_id, job.attempt, "unknown", _UNKNOWN)


class WebhookDeliveryWorker:
    """Posts due deliveries, signed and paced per channel, and reschedules failures (after the
    receiver's ``Retry-After``, or with exponential backoff and jitter).

    Round: claim (one short transaction, ``FOR UPDATE SKIP LOCKED``, the claimed rows leased
    for a while) → POST concurrently, outside any transaction → record results (one transaction).

    Every POST goes through :class:`~churn_alerts.sending.WebhookSender` (pinned transport:
    the host is resolved with ``resolver`` and checked at send time) unless a ``transport`` is
    given (tests).

    Shutdown (:meth:`stop`) never leaves a webhook sent but unrecorded, which would post it
    again once the lease runs out: the worker claims nothing new, the round in flight gets
    ``delivery_shutdown_grace_seconds`` to finish, and the sends still running then are
    cancelled and recorded as ``not_sent`` (due again, the attempt not counted) or ``unknown``
    (not sent again). The recording is shielded from a further cancellation. Only a killed
    process leaves a send to its lease; receivers dedupe such repeats on ``webhook-id``.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``clock`` tells the time of claims and records (tests move it)."""
        self._factory = session_factory
        self._clock = clock
        self._batch_size = settings.delivery_batch_size
        self._poll = settings.delivery_poll_interval_seconds
        self._grace = settings.delivery_shutdown_grace_seconds
        self._policy = RetryPolicy(
            max_attempts=settings.max_delivery_attempts,
            base_seconds=settings.delivery_backoff_base_seconds,
            max_seconds=settings.delivery_backoff_max_seconds,
            lease_seconds=settings.delivery_timeout_seconds * 3 + 10,
        )
        self._pace = Pace(
            burst=settings.webhook_burst, interval_seconds=1.0 / settings.webhook_rate_per_second
        )
        self._disable_after = settings.channel_disable_after_dead
        self._console_url = settings.console_base_url
        self._sender = MessageSender(settings, transport=transport, resolver=resolver)
        #: When a delivery held back by pacing may leave (the loop wakes for it).
        self._next_paced_at: datetime | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._abandon = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._finishing: set[asyncio.Future[list[DeliveryResult]]] = set()
        self.delivered = 0

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        """Stop claiming, let the round in flight finish within the grace period, then cancel
        and record what is still being sent; close the HTTP client."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            self._wake.set()
            _, running = await asyncio.wait({task}, timeout=self._grace)
            if running:
                _log.warning("webhook_delivery_abandoning_round", grace_seconds=self._grace)
                self._abandon.set()
                _, running = await asyncio.wait({task}, timeout=_RECORD_SECONDS)
            if running:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._sender.aclose()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                while await self.deliver_once() == self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("webhook_delivery_round_failed")
            wait = self._poll
            if self._next_paced_at is not None:
                until_paced = (self._next_paced_at - self._clock()).total_seconds()
                wait = min(wait, max(until_paced, 0.01))
            # ``asyncio.timeout``, not ``wait_for``, which on Python 3.11 may drop a stop's
            # cancellation that races a wake-up (``churn_shared.loops.PeriodicLoop``).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            self._wake.clear()

    def _service(self, session: AsyncSession) -> DeliveryService:
        return DeliveryService(
            session,
            self._policy,
            webhook_pace=self._pace,
            disable_after_dead=self._disable_after,
            console_url=self._console_url,
        )

    async def deliver_once(self) -> int:
        """One round; returns how many deliveries were attempted (0 once stopping)."""
        if self._stopping.is_set():
            return 0
        async with unit_of_work(self._factory) as session:
            service = self._service(session)
            jobs = await service.claim_due(self._batch_size, self._clock())
        self._next_paced_at = service.next_paced_at
        if not jobs:
            return 0
        sends = [_Send(job) for job in jobs]
        posts = [asyncio.create_task(self._post(send)) for send in sends]
        try:
            await self._until_posted_or_abandoned(posts)
        except asyncio.CancelledError:
            try:
                await self._finish_round(sends, posts)
            except Exception:
                _log.exception("webhook_delivery_record_failed", deliveries=len(jobs))
            raise
        results = await self._finish_round(sends, posts)
        ok = sum(r.ok for r in results)
        self.delivered += ok
        _log.info("webhooks_posted", attempted=len(results), delivered=ok)
        return len(jobs)

    async def _until_posted_or_abandoned(self, posts: list[asyncio.Task[DeliveryResult]]) -> None:
        abandon = asyncio.ensure_future(self._abandon.wait())
        try:
            pending: set[asyncio.Future[Any]] = set(posts)
            while pending and not abandon.done():
                _, pending = await asyncio.wait(
                    pending | {abandon}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(abandon)
        finally:
            abandon.cancel()

    async def _finish_round(
        self, sends: list[_Send], posts: list[asyncio.Task[DeliveryResult]]
    ) -> list[DeliveryResult]:
        """Cancel the sends still running and record every outcome, shielded: a cancellation
        arriving meanwhile does not stop the recording."""
        finishing = asyncio.ensure_future(self._cancel_and_record(sends, posts))
        self._finishing.add(finishing)
        finishing.add_done_callback(self._finishing.discard)
        return await asyncio.shield(finishing)

    async def _cancel_and_record(
        self, sends: list[_Send], posts: list[asyncio.Task[DeliveryResult]]
    ) -> list[DeliveryResult]:
        running = [post for post in posts if not post.done()]
        for post in running:
            post.cancel()
        if running:
            await asyncio.wait(running)
        results = [_result_of(send, post) for send, post in zip(sends, posts, strict=True)]
        async with unit_of_work(self._factory) as session:
            await self._service(session).record(results, self._clock())
        for r in results:
            if r.outcome in ("not_sent", "unknown", "refused"):
                _log.warning("webhook_not_delivered", delivery_id=r.delivery_id, reason=r.error)
        return results

    async def _post(self, send: _Send) -> DeliveryResult:
        send.started = True
        return await self._sender.send(send.job, trace=send.trace)


def _result_of(send: _Send, post: asyncio.Task[DeliveryResult]) -> DeliveryResult:
    if post.cancelled():
        return send.interrupted()
    error = post.exception()
    if error is not None:
        job = send.job
        return DeliveryResult(
            job.delivery_id, job.attempt, "failed", f"{type(error).__name__}: {error}"
        )
    return post.result()


class AlertWorkers(ServiceWorkers):
    """The scores consumer, the outbox relay, the pruner and the delivery worker of one
    process."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
    ) -> None:
        super().__init__(
            settings,
            engine=engine,
            publisher=publisher,
            outbox=outbox,
            processed_events=processed_events,
        )
        self._factory = session_factory
        self.delivery = self.add_loop(WebhookDeliveryWorker(session_factory, settings))
        self.snoozes = self.add_loop(
            PeriodicLoop(
                "alert-snooze-waker",
                self._wake_snoozed,
                interval_seconds=settings.snooze_check_interval_seconds,
                error_backoff_seconds=5.0,
            )
        )
        self.digests = self.add_loop(
            PeriodicLoop(
                "alert-digests",
                self._assemble_digests,
                interval_seconds=settings.digest_check_interval_seconds,
                error_backoff_seconds=5.0,
            )
        )
        self.consumer = self.add_consumer(
            name="alerts-scores",
            topics=[ChurnScoreComputedV1.topic],
            group_id=settings.consumer_group,
            handler=churn_scores_handler(session_factory, self._committed),
        )
        self.deletions = self.add_consumer(
            name="alerts-customer-deletions",
            topics=[CustomerDeletedV1.topic],
            group_id=f"{settings.consumer_group}-deletions",
            handler=customer_deleted_handler(session_factory),
            background=True,
        )

    async def _wake_snoozed(self) -> None:
        """Reopen snoozed alerts whose time has come (their events leave through the relay)."""
        async with unit_of_work(self._factory) as session:
            woken = await AlertService(session).wake_snoozed()
        if woken:
            self.relay.notify()

    async def _assemble_digests(self) -> None:
        """Turn the alerts waiting for digest-mode channels into digests when they are due."""
        async with unit_of_work(self._factory) as session:
            assembled = await DigestService(session).assemble_due()
        if assembled:
            self.delivery.notify()

    def _committed(self, outcome: ScoresOutcome) -> None:
        self.relay.notify()
        if outcome.deliveries > 0:
            self.delivery.notify()


MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


def _workers(settings: Settings, resources: ServiceResources) -> AlertWorkers:
    return AlertWorkers(settings, resources.engine, resources.session_factory, resources.publisher)


async def _open(state: Any, stack: AsyncExitStack) -> None:
    """The process's own resources: the client of auth's users API (assignee checks) and the
    sender of channel tests."""
    settings: Settings = state.settings
    sender = MessageSender(settings)
    stack.push_async_callback(sender.aclose)
    state.sender = sender
    if hasattr(state, "users"):  # given by the caller (tests)
        return
    base = settings.auth_url or settings.jwks_url.removesuffix(JWKS_PATH)
    client = service_client(base.rstrip("/"), timeout=5.0)
    stack.push_async_callback(client.aclose)
    state.users = HttpUserDirectory(client)


#: How the service process starts and stops (``churn_shared.runtime``): the API's lifespan and
#: ``python -m churn_alerts.worker`` (workers alone, no HTTP) share it.
RUNTIME = ServiceRuntime(
    migrations=MIGRATIONS,
    topics=(Topics.CHURN_SCORES, Topics.CHURN_ALERTS, CustomerDeletedV1.topic),
    client_id="churn-alerts",
    make_workers=_workers,
    setup=_open,
)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(RUNTIME.run_workers(Settings()))
