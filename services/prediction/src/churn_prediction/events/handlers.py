"""Kafka handlers of the prediction service: the contract each consumer takes and the one
service call it makes; :class:`churn_shared.kafka.TransactionalHandler` parses, claims the
processed ids, runs the transaction and wakes the outbox relay."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.config import Settings
from churn_prediction.models import processed_events
from churn_prediction.registry.hot_reload import reload_tenant_models
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.scoring.service import (
    AttributeChange,
    FeatureSnapshot,
    PredictionService,
    forget_customers,
)
from churn_prediction.scoring.serving import ServingModels
from churn_shared.contracts import (
    CustomerAttributesChangedV1,
    CustomerDeletedV1,
    CustomerFeaturesUpdatedV1,
    ModelPromotedV1,
)
from churn_shared.kafka import Received, TransactionalHandler
from churn_shared.logging import get_logger

_log = get_logger(__name__)

#: Consumer names (the scorer's is also the ``processed_events.consumer`` of its claims).
SCORER = "prediction-scorer"
MODEL_EVENTS = "prediction-model-events"
CUSTOMER_DELETIONS = "prediction-customer-deletions"
ATTRIBUTE_SCORER = "prediction-attribute-scorer"


def customer_deleted_handler(
    *, session_factory: async_sessionmaker[AsyncSession]
) -> TransactionalHandler[CustomerDeletedV1, int]:
    """Consumes ``customer.deleted.v1``: drops the deleted customers' scores and shadow scores
    (each event once; doing it again would be harmless)."""

    async def forget(session: AsyncSession, received: list[Received[CustomerDeletedV1]]) -> int:
        return await forget_customers(
            session, [(r.tenant_id, r.payload.customer_id) for r in received]
        )

    def committed(removed: int) -> None:
        _log.info("deleted_customers_scores_dropped", scores=removed)

    return TransactionalHandler(
        name=CUSTOMER_DELETIONS,
        contract=CustomerDeletedV1,
        session_factory=session_factory,
        processed_events=processed_events,
        apply=forget,
        on_committed=committed,
    )


def feature_snapshots_handler(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    models: ServingModels,
    settings: Settings,
    wake_relay: Callable[[], None],
) -> TransactionalHandler[CustomerFeaturesUpdatedV1, int]:
    """Scores ``customer.features.v1`` micro-batches, each snapshot once; a payload that is not
    a valid ``CustomerFeaturesUpdatedV1`` fails (and ends in the dead-letter topic)."""
    service = PredictionService(models, settings)

    async def score(
        session: AsyncSession, received: list[Received[CustomerFeaturesUpdatedV1]]
    ) -> int:
        snapshots = [
            FeatureSnapshot(
                tenant_id=r.tenant_id,
                customer_id=r.payload.customer_id,
                features=r.payload.features,
                backfill=r.payload.backfill,
                request_id=r.request_id,
            )
            for r in received
        ]
        return len(await service.score_snapshots(session, snapshots))

    def committed(scored: int) -> None:
        _log.info("feature_snapshots_scored", scored=scored)
        if scored:
            wake_relay()

    return TransactionalHandler(
        name=SCORER,
        contract=CustomerFeaturesUpdatedV1,
        session_factory=session_factory,
        processed_events=processed_events,
        apply=score,
        on_committed=committed,
    )


def customer_attributes_handler(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    models: ServingModels,
    settings: Settings,
    wake_relay: Callable[[], None],
) -> TransactionalHandler[CustomerAttributesChangedV1, int]:
    """Scores ``customer.attributes.v1`` micro-batches with each tenant's champion when it reads
    imported attributes (each event once; other tenants' events are claimed and skipped); a
    payload that is not a valid ``CustomerAttributesChangedV1`` ends in the dead-letter topic."""
    service = PredictionService(models, settings)

    async def score(
        session: AsyncSession, received: list[Received[CustomerAttributesChangedV1]]
    ) -> int:
        # An import right after a promotion: score with the champion the registry names, even
        # before this replica has consumed the promotion's reload event.
        stale = await ModelRegistryService(session).stale_champions(
            models, [r.tenant_id for r in received]
        )
        for tenant_id in stale:
            await reload_tenant_models(
                session_factory, models, tenant_id, settings.model_num_threads
            )
        changes = [
            AttributeChange(
                tenant_id=r.tenant_id,
                customer_id=r.payload.customer_id,
                attributes=r.payload.attributes,
                request_id=r.request_id,
            )
            for r in received
        ]
        return len(await service.score_attributes(session, changes))

    def committed(scored: int) -> None:
        if scored:
            _log.info("customer_attributes_scored", scored=scored)
            wake_relay()

    return TransactionalHandler(
        name=ATTRIBUTE_SCORER,
        contract=CustomerAttributesChangedV1,
        session_factory=session_factory,
        processed_events=processed_events,
        apply=score,
        on_committed=committed,
    )


def model_promoted_handler(
    *,
    session_factory: async_sessionmaker[AsyncSession],
    models: ServingModels,
    num_threads: int = 1,
) -> TransactionalHandler[ModelPromotedV1, None]:
    """Hot reload: on ``ModelPromotedV1`` re-read each named tenant's champion and challenger.

    Runs in a broadcast consumer group (one per replica), so every replica reloads; reloading is
    idempotent, so no event ids are claimed (a claim would let one replica alone reload).
    """

    async def reload(session: AsyncSession, received: list[Received[ModelPromotedV1]]) -> None:
        # Each tenant in a transaction of its own, begun under its reload lock (``session``
        # is left unused: a read in it could predate a promotion committed since).
        for tenant_id in dict.fromkeys(r.payload.tenant_id for r in received):
            await reload_tenant_models(session_factory, models, tenant_id, num_threads)

    return TransactionalHandler(
        name=MODEL_EVENTS,
        contract=ModelPromotedV1,
        session_factory=session_factory,
        processed_events=None,
        apply=reload,
    )
