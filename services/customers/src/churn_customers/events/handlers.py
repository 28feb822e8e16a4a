"""Kafka handlers: parse the batch, apply it in one unit of work, then wake the outbox relay."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.models import processed_events
from churn_customers.schemas import EventIn
from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1, CustomerEventReceivedV1
from churn_shared.db import unit_of_work
from churn_shared.kafka import claim_event_ids
from churn_shared.kafka.consumer import Delivery
from churn_shared.logging import get_logger

_log = get_logger(__name__)
EVENT_RECEIVED_TYPE = "CustomerEventReceivedV1"
SCORE_COMPUTED_TYPE = "ChurnScoreComputedV1"


class CustomerEventHandler:
    """Consumes ``customer.events.v1`` through the same service method as ``POST /v1/events``.

    Idempotent by the events' own ids (unique per tenant), exactly like the HTTP path, so a
    redelivered message or the same event over HTTP is counted as a duplicate and applied once.
    A payload that is not a valid event raises, so the consumer isolates and dead-letters it
    while the rest of the batch is applied.
    """

    name = "customers-events"

    def __init__(
        self, session_factory: async_sessionmaker[AsyncSession], on_committed: Callable[[], None]
    ) -> None:
        self._factory = session_factory
        self._on_committed = on_committed

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        by_tenant: dict[str, list[EventIn]] = defaultdict(list)
        for d in deliveries:
            if d.envelope.event_type != EVENT_RECEIVED_TYPE:
                continue
            payload = CustomerEventReceivedV1.model_validate(d.envelope.payload)
            by_tenant[d.envelope.tenant_id].append(EventIn.model_validate(payload.model_dump()))
        if not by_tenant:
            return
        accepted = duplicates = 0
        async with unit_of_work(self._factory) as session:
            service = EventIngestService(session)
            for tenant_id, events in by_tenant.items():
                result = await service.record_events(tenant_id, events)
                accepted += result.accepted
                duplicates += result.duplicates
        _log.info("customer_events_handled", accepted=accepted, duplicates=duplicates)
        self._on_committed()


class ChurnScoreHandler:
    """Consumes ``churn.scores.v1`` and keeps each customer's latest score."""

    name = "customers-scores"

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = session_factory

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        scores = [
            (
                d.envelope.event_id,
                TenantScore(
                    d.envelope.tenant_id, ChurnScoreComputedV1.model_validate(d.envelope.payload)
                ),
            )
            for d in deliveries
            if d.envelope.event_type == SCORE_COMPUTED_TYPE
        ]
        if not scores:
            return
        async with unit_of_work(self._factory) as session:
            fresh = await claim_event_ids(
                session, processed_events, self.name, [event_id for event_id, _ in scores]
            )
            await EventIngestService(session).record_scores(
                [score for event_id, score in scores if event_id in fresh]
            )
        _log.info("churn_scores_handled", scores=len(scores))
