"""Kafka handlers of the customers service: the contract each consumer takes and the one service
call it makes; :class:`churn_shared.kafka.TransactionalHandler` parses, claims, runs the
transaction and wakes the outbox relay."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.attributes import request_attribute_rescan
from churn_customers.models import processed_events
from churn_customers.schemas import EventBatchAccepted, EventIn
from churn_customers.service import EventIngestService, TenantScore
from churn_customers.tenants import TenantDirectory
from churn_shared.contracts import ChurnScoreComputedV1, CustomerEventReceivedV1, ModelPromotedV1
from churn_shared.db import utcnow
from churn_shared.kafka import Received, Rejection, TransactionalHandler
from churn_shared.logging import get_logger

_log = get_logger(__name__)

#: Consumer names (also the ``processed_events.consumer`` of the ids they claim).
EVENTS_CONSUMER = "customers-events"
SCORES_CONSUMER = "customers-scores"
MODELS_CONSUMER = "customers-models"


def customer_events_handler(
    session_factory: async_sessionmaker[AsyncSession],
    wake_relay: Callable[[], None],
    tenants: TenantDirectory,
) -> TransactionalHandler[CustomerEventReceivedV1, EventBatchAccepted]:
    """Consumes ``customer.events.v1`` through the same service method as ``POST /v1/events``.

    Idempotent by the events' own ids (unique per tenant), exactly like the HTTP path, so a
    redelivered message or the same event over HTTP is counted as a duplicate and applied once;
    no envelope ids are claimed. A payload that is not a valid event raises, so the consumer
    isolates and dead-letters it while the rest of the batch is applied. An event whose tenant
    the auth service does not know is dead-lettered with that reason (``tenants``; when auth
    cannot answer, the batch waits in the broker).
    """

    async def screen(received: list[Received[CustomerEventReceivedV1]]) -> list[Rejection]:
        unknown = await tenants.unknown({r.tenant_id for r in received})
        return [
            Rejection(r.delivery, f"unknown tenant {r.tenant_id!r}")
            for r in received
            if r.tenant_id in unknown
        ]

    async def record(
        session: AsyncSession, received: list[Received[CustomerEventReceivedV1]]
    ) -> EventBatchAccepted:
        by_tenant: dict[str, list[EventIn]] = defaultdict(list)
        for r in received:
            by_tenant[r.tenant_id].append(EventIn.model_validate(r.payload.model_dump()))
        service = EventIngestService(session)
        accepted = duplicates = 0
        for tenant_id, events in by_tenant.items():
            result = await service.record_events(tenant_id, events)
            accepted += result.accepted
            duplicates += result.duplicates
        return EventBatchAccepted(accepted=accepted, duplicates=duplicates)

    def committed(result: EventBatchAccepted) -> None:
        _log.info("customer_events_handled", accepted=result.accepted, duplicates=result.duplicates)
        wake_relay()

    return TransactionalHandler(
        name=EVENTS_CONSUMER,
        contract=CustomerEventReceivedV1,
        session_factory=session_factory,
        processed_events=None,
        apply=record,
        on_committed=committed,
        screen=screen,
    )


def churn_scores_handler(
    session_factory: async_sessionmaker[AsyncSession],
) -> TransactionalHandler[ChurnScoreComputedV1, None]:
    """Consumes ``churn.scores.v1`` and keeps each customer's latest score."""

    async def record(session: AsyncSession, received: list[Received[ChurnScoreComputedV1]]) -> None:
        await EventIngestService(session).record_scores(
            [TenantScore(r.tenant_id, r.payload) for r in received]
        )

    return TransactionalHandler(
        name=SCORES_CONSUMER,
        contract=ChurnScoreComputedV1,
        session_factory=session_factory,
        processed_events=processed_events,
        apply=record,
    )


def model_promoted_handler(
    session_factory: async_sessionmaker[AsyncSession],
    wake_rescanner: Callable[[], None],
) -> TransactionalHandler[ModelPromotedV1, int]:
    """Consumes ``model.events.v1``: when a tenant's champion moves to one of its versions, have
    every customer's attributes sent again (``churn_customers.attributes``), so that a champion
    reading imported attributes scores the customers imported before it. Each event is claimed
    once across replicas; challenger moves and a champion removed (the global default, which
    reads the event features) change nothing here."""

    async def request(session: AsyncSession, received: list[Received[ModelPromotedV1]]) -> int:
        latest: dict[str, str] = {}
        for r in received:
            event = r.payload
            if event.alias == "champion" and event.version is not None:
                latest[event.tenant_id] = event.version
        now = utcnow()
        for tenant_id, version in latest.items():
            await request_attribute_rescan(session, tenant_id, version, now)
        return len(latest)

    def committed(requested: int) -> None:
        if requested:
            _log.info("attribute_rescans_requested", tenants=requested)
            wake_rescanner()

    return TransactionalHandler(
        name=MODELS_CONSUMER,
        contract=ModelPromotedV1,
        session_factory=session_factory,
        processed_events=processed_events,
        apply=request,
        on_committed=committed,
    )
