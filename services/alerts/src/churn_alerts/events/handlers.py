"""Kafka handlers of the alerts service: the contract each consumer takes and the one service
call it makes; :class:`churn_shared.kafka.TransactionalHandler` parses, claims the processed
ids, runs the transaction and hands the outcome to whoever waits for the commit."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.models import processed_events
from churn_alerts.rules import TenantScore
from churn_alerts.service import AlertService, ScoresOutcome, forget_customers
from churn_shared.contracts import ChurnScoreComputedV1, CustomerDeletedV1
from churn_shared.kafka import Received, TransactionalHandler

#: The consumer name under which score event ids are claimed (kept: existing claims use it).
SCORES_CONSUMER = "alerts.scores"


def churn_scores_handler(
    session_factory: async_sessionmaker[AsyncSession],
    on_committed: Callable[[ScoresOutcome], None],
) -> TransactionalHandler[ChurnScoreComputedV1, ScoresOutcome]:
    """Consumes ``churn.scores.v1``: one transaction per micro-batch, each score once."""

    async def raise_alerts(
        session: AsyncSession, received: list[Received[ChurnScoreComputedV1]]
    ) -> ScoresOutcome:
        return await AlertService(session).raise_alerts(
            [TenantScore(r.tenant_id, r.payload) for r in received]
        )

    return TransactionalHandler(
        name=SCORES_CONSUMER,
        contract=ChurnScoreComputedV1,
        session_factory=session_factory,
        processed_events=processed_events,
        apply=raise_alerts,
        on_committed=on_committed,
    )


#: Consumer name (also the ``processed_events.consumer`` of the ids it claims).
CUSTOMER_DELETIONS_CONSUMER = "alerts-customer-deletions"


def customer_deleted_handler(
    session_factory: async_sessionmaker[AsyncSession],
) -> TransactionalHandler[CustomerDeletedV1, int]:
    """Consumes ``customer.deleted.v1``: drops the deleted customers' alerts and risk bands."""

    async def forget(session: AsyncSession, received: list[Received[CustomerDeletedV1]]) -> int:
        return await forget_customers(
            session, [(r.tenant_id, r.payload.customer_id) for r in received]
        )

    return TransactionalHandler(
        name=CUSTOMER_DELETIONS_CONSUMER,
        contract=CustomerDeletedV1,
        session_factory=session_factory,
        processed_events=processed_events,
        apply=forget,
    )
