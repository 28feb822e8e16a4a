"""Kafka handlers: parse the batch, apply it in one unit of work, then wake whoever waits."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.rules import TenantScore
from churn_alerts.service import AlertService
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work
from churn_shared.kafka.consumer import Delivery
from churn_shared.logging import get_logger

_log = get_logger(__name__)
SCORE_EVENT_TYPE = "ChurnScoreComputedV1"


class ScoreHandler:
    """Consumes ``churn.scores.v1``: one transaction per micro-batch, idempotent per event id."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        on_committed: Callable[[bool], None],
    ) -> None:
        self._factory = session_factory
        self._on_committed = on_committed

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        scored = [
            (
                d.envelope.event_id,
                TenantScore(
                    d.envelope.tenant_id, ChurnScoreComputedV1.model_validate(d.envelope.payload)
                ),
            )
            for d in deliveries
            if d.envelope.event_type == SCORE_EVENT_TYPE
        ]
        if not scored:
            return
        async with unit_of_work(self._factory) as session:
            outcome = await AlertService(session).handle_scores(scored)
        _log.info(
            "scores_handled",
            scores=len(scored),
            alerts=outcome.alerts,
            deliveries=outcome.deliveries,
        )
        self._on_committed(outcome.deliveries > 0)
