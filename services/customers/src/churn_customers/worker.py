"""Background work of the customers service: the events and scores consumers, the outbox
relay, the profile refresher and the score reconciler. Started by the API's lifespan when
``run_workers`` is set, or on its own with ``python -m churn_customers.worker``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.attributes import resend_attributes_page
from churn_customers.config import Settings
from churn_customers.events.handlers import (
    churn_scores_handler,
    customer_events_handler,
    model_promoted_handler,
)
from churn_customers.models import outbox, processed_events
from churn_customers.service import CustomerService, EventIngestService, RepublishedBatch
from churn_customers.tenants import HttpTenantDirectory, TenantDirectory
from churn_shared.contracts import (
    ChurnScoreComputedV1,
    CustomerEventReceivedV1,
    CustomerTopics,
    JobTopics,
    ModelPromotedV1,
    Topics,
)
from churn_shared.db import (
    is_transient,
    unit_of_work,
    utcnow,
)
from churn_shared.http import service_client
from churn_shared.kafka import EventPublisher
from churn_shared.logging import get_logger
from churn_shared.loops import PeriodicLoop
from churn_shared.runtime import ServiceResources, ServiceRuntime
from churn_shared.security import JWKS_PATH
from churn_shared.workers import ServiceWorkers

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
TOPICS = (
    Topics.CUSTOMER_EVENTS,
    Topics.CUSTOMER_FEATURES,
    Topics.CHURN_SCORES,
    CustomerTopics.CUSTOMER_DELETED,
    CustomerTopics.CUSTOMER_ATTRIBUTES,
    JobTopics.CUSTOMER_IMPORTS,
    ModelPromotedV1.topic,
)
_log = get_logger(__name__)


class ProfileRefresher:
    """Every ``interval``, recomputes the profiles older than ``max_age`` (a batch per
    transaction, until none is left) and wakes the outbox relay to publish them."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float,
        max_age: timedelta,
        batch_size: int,
        notify: Callable[[], None],
    ) -> None:
        self._factory = session_factory
        self._max_age = max_age
        self._batch = batch_size
        self._notify = notify
        self._loop = PeriodicLoop(
            "profile-refresher", self.run_once, interval_seconds=interval_seconds
        )
        self.refreshed = 0

    async def run_once(self) -> int:
        # One "now" for the whole run: what this run refreshed is not stale again within it.
        started = utcnow()
        total = 0
        while True:
            async with unit_of_work(self._factory) as session:
                done = await EventIngestService(session).refresh_stale_profiles(
                    self._max_age, self._batch, now=started
                )
            if done:
                self._notify()
            total += done
            if done < self._batch:
                break
        self.refreshed += total
        if total:
            _log.info("profiles_refreshed", customers=total)
        return total

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


class ScoreReconciler:
    """At start and then every ``interval``, re-sends the profiles that no score is as new as
    (:meth:`EventIngestService.republish_unscored`; a batch per transaction, walking every
    profile once per round) and wakes the outbox relay to publish them.

    The relay deletes an outbox row once the broker acknowledges it, so a broker that loses
    acknowledged messages (the embedded Tansu keeps them in memory) would otherwise leave those
    customers unscored until their profile is next recomputed."""

    #: Attempts of one batch that lost a lock conflict (a deadlock, SQLite busy) before the
    #: round gives up and the next one carries on.
    ATTEMPTS = 3

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float,
        grace: timedelta,
        max_backoff: timedelta,
        batch_size: int,
        notify: Callable[[], None],
    ) -> None:
        self._factory = session_factory
        self._grace = grace
        self._max_backoff = max_backoff
        self._batch = batch_size
        self._notify = notify
        self._loop = PeriodicLoop(
            "score-reconciler", self.run_once, interval_seconds=interval_seconds
        )
        self.republished = 0

    async def run_once(self) -> int:
        started = utcnow()
        total = 0
        after: tuple[str, str] | None = None
        while True:
            batch = await self._batch_with_retries(after, started)
            if batch.republished:
                self._notify()
            total += batch.republished
            if batch.next_after is None:
                break
            after = batch.next_after
        self.republished += total
        if total:
            _log.warning("unscored_profiles_republished", customers=total)
        return total

    async def _batch_with_retries(
        self, after: tuple[str, str] | None, now: datetime
    ) -> RepublishedBatch:
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                async with unit_of_work(self._factory) as session:
                    return await EventIngestService(session).republish_unscored(
                        grace=self._grace,
                        max_backoff=self._max_backoff,
                        limit=self._batch,
                        after=after,
                        now=now,
                    )
            except Exception as exc:
                if attempt == self.ATTEMPTS or not is_transient(exc):
                    raise
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


class ScoreHistoryPruner:
    """Every ``interval``, deletes the scores older than ``retention`` (a batch per
    transaction, until none is left), keeping each customer's latest."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float,
        retention: timedelta,
        batch_size: int,
    ) -> None:
        self._factory = session_factory
        self._retention = retention
        self._batch = batch_size
        self._loop = PeriodicLoop(
            "score-history-pruner",
            self.run_once,
            interval_seconds=interval_seconds,
            error_backoff_seconds=60.0,
        )
        self.pruned = 0

    async def run_once(self, now: datetime | None = None) -> int:
        cutoff = (now or utcnow()) - self._retention
        total = 0
        while True:
            async with unit_of_work(self._factory) as session:
                done = await CustomerService(session).prune_score_history(cutoff, self._batch)
            total += done
            if done < self._batch:
                break
        self.pruned += total
        if total:
            _log.info("score_history_pruned", scores=total, older_than=cutoff.isoformat())
        return total

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


class AttributeRescanner:
    """Sends the customers' attributes again for each tenant whose champion moved
    (:func:`churn_customers.attributes.resend_attributes_page`: a page per transaction, until
    no rescan is left), woken by the move and every ``interval`` (a rescan left half-way by a
    stopped process carries on from its last page)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        interval_seconds: float,
        page_size: int,
        notify: Callable[[], None],
    ) -> None:
        self._factory = session_factory
        self._page_size = page_size
        self._notify = notify
        self._loop = PeriodicLoop(
            "attribute-rescanner",
            self.run_once,
            interval_seconds=interval_seconds,
            error_backoff_seconds=1.0,
        )
        self.sent = 0

    def notify(self) -> None:
        self._loop.notify()

    async def run_once(self) -> int:
        total = 0
        while True:
            async with unit_of_work(self._factory) as session:
                page = await resend_attributes_page(session, self._page_size)
            if page is None:
                break
            if page.sent:
                self._notify()
            total += page.sent
            if page.last:
                _log.info("attribute_rescan_finished", tenant_id=page.tenant_id)
        self.sent += total
        return total

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


class CustomerWorkers(ServiceWorkers):
    """The consumers (events, scores, model moves), the outbox relay, the attribute
    rescanner, the profile refresher, the score reconciler and the score-history pruner of one
    process."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
        tenants: TenantDirectory,
    ) -> None:
        super().__init__(
            settings,
            engine=engine,
            publisher=publisher,
            outbox=outbox,
            processed_events=processed_events,
        )
        # Joining a consumer group takes seconds on Tansu: the two groups are joined at once.
        self.events_consumer = self.add_consumer(
            name="customers-events",
            topics=[CustomerEventReceivedV1.topic],
            group_id=f"{settings.consumer_group}-events",
            handler=customer_events_handler(session_factory, self.relay.notify, tenants),
        )
        self.scores_consumer = self.add_consumer(
            name="customers-scores",
            topics=[ChurnScoreComputedV1.topic],
            group_id=f"{settings.consumer_group}-scores",
            handler=churn_scores_handler(session_factory),
            # Keeps each customer's latest score for the API: not on the way to an alert.
            background=True,
        )
        self.rescanner = self.add_loop(
            AttributeRescanner(
                session_factory,
                interval_seconds=settings.attribute_rescan_interval_seconds,
                page_size=settings.attribute_rescan_page_size,
                notify=self.relay.notify,
            )
        )
        self.models_consumer = self.add_consumer(
            name="customers-models",
            topics=[ModelPromotedV1.topic],
            group_id=f"{settings.consumer_group}-models",
            handler=model_promoted_handler(session_factory, self.rescanner.notify),
            # A champion's move: rare, and not on the way from an event to its alert.
            background=True,
        )
        self.refresher = self.add_loop(
            ProfileRefresher(
                session_factory,
                interval_seconds=settings.profile_refresh_interval_seconds,
                max_age=timedelta(hours=settings.profile_max_age_hours),
                batch_size=settings.profile_refresh_batch_size,
                notify=self.relay.notify,
            )
        )
        self.reconciler = self.add_loop(
            ScoreReconciler(
                session_factory,
                interval_seconds=settings.score_reconcile_interval_seconds,
                grace=timedelta(seconds=settings.score_reconcile_grace_seconds),
                max_backoff=timedelta(seconds=settings.score_reconcile_max_backoff_seconds),
                batch_size=settings.score_reconcile_batch_size,
                notify=self.relay.notify,
            )
        )
        self.score_pruner = self.add_loop(
            ScoreHistoryPruner(
                session_factory,
                interval_seconds=settings.score_history_prune_interval_seconds,
                retention=timedelta(days=settings.score_history_retention_days),
                batch_size=settings.score_history_prune_batch_size,
            )
        )


def _workers(settings: Settings, resources: ServiceResources) -> CustomerWorkers:
    return CustomerWorkers(
        settings,
        resources.engine,
        resources.session_factory,
        resources.publisher,
        resources.state.tenants,
    )


async def _open(state: Any, stack: AsyncExitStack) -> None:
    """The process's own resource: the directory of tenants (auth's internal API), which the
    events consumer asks about the tenants of the events it consumes."""
    if hasattr(state, "tenants"):  # given by the caller (tests)
        return
    settings: Settings = state.settings
    base = settings.auth_url or settings.jwks_url.removesuffix(JWKS_PATH)
    directory = HttpTenantDirectory(
        service_client(base.rstrip("/"), timeout=5.0),
        known_ttl=settings.known_tenant_cache_seconds,
        unknown_ttl=settings.unknown_tenant_cache_seconds,
    )
    stack.push_async_callback(directory.aclose)
    state.tenants = directory


#: How the service process starts and stops (``churn_shared.runtime``): the API's lifespan and
#: ``python -m churn_customers.worker`` (workers alone, no HTTP) share it.
RUNTIME = ServiceRuntime(
    migrations=MIGRATIONS,
    topics=TOPICS,
    client_id="churn-customers",
    make_workers=_workers,
    setup=_open,
)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(RUNTIME.run_workers(Settings()))
