"""Kafka handlers: parse deliveries, claim their ids, call one service method per batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.config import Settings
from churn_prediction.models import processed_events
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.scoring.service import FeatureSnapshot, PredictionService
from churn_prediction.scoring.serving import ServingModels
from churn_shared.contracts import CustomerFeaturesUpdatedV1, ModelPromotedV1
from churn_shared.db import unit_of_work
from churn_shared.kafka import claim_event_ids
from churn_shared.kafka.consumer import Delivery
from churn_shared.logging import get_logger

_log = get_logger(__name__)

SCORER = "prediction-scorer"
FEATURES_EVENT = "CustomerFeaturesUpdatedV1"


class FeatureSnapshotHandler:
    """Scores ``customer.features.v1`` micro-batches; a payload that is not a valid
    ``CustomerFeaturesUpdatedV1`` fails (and ends in the dead-letter topic)."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        models: ServingModels,
        settings: Settings,
        notify: Callable[[], None],
    ) -> None:
        self._factory = session_factory
        self._service = PredictionService(models, settings)
        self._notify = notify
        self.scored = 0

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        parsed: list[tuple[str, FeatureSnapshot]] = []
        for delivery in deliveries:
            env = delivery.envelope
            if env.event_type != FEATURES_EVENT:
                _log.warning("unexpected_event_type", event_type=env.event_type)
                continue
            payload = CustomerFeaturesUpdatedV1.model_validate(env.payload)
            parsed.append(
                (
                    env.event_id,
                    FeatureSnapshot(
                        tenant_id=env.tenant_id,
                        customer_id=payload.customer_id,
                        features=payload.features,
                        backfill=payload.backfill,
                        request_id=delivery.request_id,
                    ),
                )
            )
        if not parsed:
            return
        async with unit_of_work(self._factory) as session:
            fresh = await claim_fresh(session, [event_id for event_id, _ in parsed])
            snapshots = [snap for event_id, snap in parsed if fresh.pop(event_id, False)]
            events = await self._service.score_snapshots(session, snapshots)
        self.scored += len(events)
        _log.info("feature_snapshots_scored", snapshots=len(parsed), scored=len(events))
        if events:
            self._notify()


async def claim_fresh(session: AsyncSession, event_ids: Sequence[str]) -> dict[str, bool]:
    """The ids not processed before (each id once, even when it repeats inside the batch)."""
    fresh = await claim_event_ids(session, processed_events, SCORER, event_ids)
    return dict.fromkeys(fresh, True)


PROMOTED_EVENT = "ModelPromotedV1"


class ModelPromotedHandler:
    """Hot reload: on ``ModelPromotedV1`` re-read that tenant's champion and challenger.

    Runs in a broadcast consumer group (one per replica), so every replica reloads; reloading is
    idempotent, so no event ids are claimed.
    """

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        models: ServingModels,
        num_threads: int = 1,
    ) -> None:
        self._factory = session_factory
        self._models = models
        self._threads = num_threads
        self.reloads = 0

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        tenants: list[str] = []
        for delivery in deliveries:
            env = delivery.envelope
            if env.event_type != PROMOTED_EVENT:
                continue
            payload = ModelPromotedV1.model_validate(env.payload)
            if payload.tenant_id not in tenants:
                tenants.append(payload.tenant_id)
        for tenant_id in tenants:
            async with unit_of_work(self._factory) as session:
                await ModelRegistryService(session).reload_tenant(
                    self._models, tenant_id, self._threads
                )
            self.reloads += 1
