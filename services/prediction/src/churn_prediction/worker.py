"""The background work of the prediction service: the feature-snapshot scorer, the scorer of
changed customer attributes, the model hot reload, the relay and the pruning of consumer
idempotency records."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.config import Settings
from churn_prediction.events.handlers import (
    ATTRIBUTE_SCORER,
    CUSTOMER_DELETIONS,
    MODEL_EVENTS,
    SCORER,
    customer_attributes_handler,
    customer_deleted_handler,
    feature_snapshots_handler,
    model_promoted_handler,
)
from churn_prediction.models import outbox, processed_events
from churn_prediction.scoring.serving import ServingModels
from churn_shared.contracts import (
    CustomerAttributesChangedV1,
    CustomerDeletedV1,
    CustomerFeaturesUpdatedV1,
    JobTopics,
    ModelPromotedV1,
    ModelTopics,
    Topics,
)
from churn_shared.kafka import EventPublisher
from churn_shared.workers import ServiceWorkers

TOPICS = (
    Topics.CUSTOMER_FEATURES,
    Topics.CHURN_SCORES,
    ModelTopics.MODEL_EVENTS,
    ModelTopics.TRAINING_PROGRESS,
    JobTopics.PREDICTION_JOBS,
    CustomerDeletedV1.topic,
    CustomerAttributesChangedV1.topic,
)


class ScoringWorker(ServiceWorkers):
    """Consumes ``customer.features.v1`` in micro-batches (and ``customer.attributes.v1``, for
    tenants whose champion reads imported attributes), reloads models on
    ``model.events.v1`` (a consumer group of its own per replica: a broadcast) and relays the
    outbox to Kafka."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
        models: ServingModels,
    ) -> None:
        super().__init__(
            settings,
            engine=engine,
            publisher=publisher,
            outbox=outbox,
            processed_events=processed_events,
        )
        self.model_events = model_promoted_handler(
            session_factory=session_factory, models=models, num_threads=settings.model_num_threads
        )
        self.model_group_id = f"prediction-models-{uuid.uuid4().hex}"
        self.model_consumer = self.add_consumer(
            name=MODEL_EVENTS,
            topics=[ModelPromotedV1.topic],
            group_id=self.model_group_id,
            handler=self.model_events,
            auto_offset_reset="latest",
            background=True,
        )
        self.handler = feature_snapshots_handler(
            session_factory=session_factory,
            models=models,
            settings=settings,
            wake_relay=self.relay.notify,
        )
        self.consumer = self.add_consumer(
            name=SCORER,
            topics=[CustomerFeaturesUpdatedV1.topic],
            group_id=settings.scorer_group_id,
            handler=self.handler,
        )
        self.deletions = self.add_consumer(
            name=CUSTOMER_DELETIONS,
            topics=[CustomerDeletedV1.topic],
            group_id=f"{settings.scorer_group_id}-deletions",
            handler=customer_deleted_handler(session_factory=session_factory),
            background=True,
        )
        self.attributes = self.add_consumer(
            name=ATTRIBUTE_SCORER,
            topics=[CustomerAttributesChangedV1.topic],
            group_id=f"{settings.scorer_group_id}-attributes",
            handler=customer_attributes_handler(
                session_factory=session_factory,
                models=models,
                settings=settings,
                wake_relay=self.relay.notify,
            ),
            background=True,
        )
