"""Kafka plumbing: one envelope, a publisher, an outbox relay and an idempotent batch consumer."""

from churn_shared.kafka.consumer import BatchConsumer, BatchHandler, Rejection, RetryLaterError
from churn_shared.kafka.envelope import Envelope, EnvelopeError
from churn_shared.kafka.handler import Received, TransactionalHandler
from churn_shared.kafka.metrics import PipelineMetrics
from churn_shared.kafka.outbox import (
    OutboxRelay,
    ProcessedEventsPruner,
    claim_event_ids,
    enqueue,
    outbox_table,
    processed_events_table,
)
from churn_shared.kafka.producer import EventPublisher, ensure_topics

__all__ = [
    "BatchConsumer",
    "BatchHandler",
    "Envelope",
    "EnvelopeError",
    "EventPublisher",
    "OutboxRelay",
    "PipelineMetrics",
    "ProcessedEventsPruner",
    "Received",
    "Rejection",
    "RetryLaterError",
    "TransactionalHandler",
    "claim_event_ids",
    "enqueue",
    "ensure_topics",
    "outbox_table",
    "processed_events_table",
]
