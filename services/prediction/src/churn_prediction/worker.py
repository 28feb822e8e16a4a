"""The background work of the prediction service: the feature-snapshot scorer, the relay and
the pruning of consumer idempotency records."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.config import Settings
from churn_prediction.events.handlers import FeatureSnapshotHandler, ModelPromotedHandler
from churn_prediction.models import outbox, processed_events
from churn_prediction.scoring.serving import ServingModels
from churn_shared.contracts import ModelTopics, Topics
from churn_shared.kafka import BatchConsumer, EventPublisher, OutboxRelay, ProcessedEventsPruner

TOPICS = (
    Topics.CUSTOMER_FEATURES,
    Topics.CHURN_SCORES,
    ModelTopics.MODEL_EVENTS,
    ModelTopics.TRAINING_PROGRESS,
)


class ScoringWorker:
    """Consumes ``customer.features.v1`` in micro-batches, reloads models on
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
        self.relay = OutboxRelay(engine, outbox, publisher)
        self.pruner = ProcessedEventsPruner(
            engine,
            processed_events,
            retention=timedelta(hours=settings.processed_events_retention_hours),
            interval_seconds=settings.housekeeping_interval_seconds,
        )
        self.handler = FeatureSnapshotHandler(
            session_factory=session_factory,
            models=models,
            settings=settings,
            notify=self.relay.notify,
        )
        self.consumer = BatchConsumer(
            topics=[Topics.CUSTOMER_FEATURES],
            group_id=settings.scorer_group_id,
            handler=self.handler,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            dlq_publisher=publisher,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            name="prediction-scorer",
        )
        self.model_events = ModelPromotedHandler(
            session_factory=session_factory, models=models, num_threads=settings.model_num_threads
        )
        self.model_group_id = f"prediction-models-{uuid.uuid4().hex}"
        self.model_consumer = BatchConsumer(
            topics=[ModelTopics.MODEL_EVENTS],
            group_id=self.model_group_id,
            handler=self.model_events,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            dlq_publisher=publisher,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            auto_offset_reset="latest",
            name="prediction-model-events",
        )

    async def start(self) -> None:
        self.relay.start()
        self.pruner.start()
        await self.model_consumer.start()
        await self.consumer.start()

    async def stop(self) -> None:
        await self.pruner.stop()
        await self.consumer.stop()
        await self.model_consumer.stop()
        await self.relay.stop()
