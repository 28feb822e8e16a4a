"""Where a message spends its time between services, as Prometheus histograms on ``/metrics``.

Every hop of the live pipeline (event ingest → features published → scored → alert raised →
delivered on the feed) is one outbox relay and one consumer. The relay times each row from its
``created_at`` (written in the producing transaction) to the broker's acknowledgement; the
consumer times each envelope from its ``occurred_at`` (the producing service's clock when it
made the envelope) and from the record's broker timestamp (when the relay sent it) to the
moment the consumer has it in hand, and times its handler per batch. Read together they say
whether a message waited in the outbox, in the broker, or behind the handler.

An envelope re-sent with its original time (a republished profile keeps its ``as_of``) shows as
a long hop: it did wait that long since it was first made.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

#: From a millisecond to a minute: one hop is milliseconds when idle, seconds under a backlog.
HOP_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_SIZE_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)


class PipelineMetrics:
    """The histograms of one process's relay and consumers, in the app's own registry."""

    def __init__(self, registry: CollectorRegistry, *, service: str) -> None:
        self.service = service
        self.outbox_publish = Histogram(
            "churn_outbox_publish_seconds",
            "Outbox row written → acknowledged by the broker (the relay's part of a hop)",
            ["service", "topic"],
            registry=registry,
            buckets=HOP_BUCKETS,
        )
        self.relay_batch = Histogram(
            "churn_outbox_relay_batch_size",
            "Rows published per relay round",
            ["service"],
            registry=registry,
            buckets=BATCH_SIZE_BUCKETS,
        )
        self.hop = Histogram(
            "churn_event_hop_seconds",
            "Envelope made (its occurred_at) → in the consumer's hands: outbox, relay and broker",
            ["service", "consumer", "topic"],
            registry=registry,
            buckets=HOP_BUCKETS,
        )
        self.broker = Histogram(
            "churn_broker_hop_seconds",
            "Record sent by the relay (its broker timestamp) → in the consumer's hands",
            ["service", "consumer", "topic"],
            registry=registry,
            buckets=HOP_BUCKETS,
        )
        self.handler = Histogram(
            "churn_consumer_batch_seconds",
            "One consumed batch: its transaction, from the handler's call to its commit",
            ["service", "consumer"],
            registry=registry,
            buckets=HOP_BUCKETS,
        )
        self.batch_size = Histogram(
            "churn_consumer_batch_size",
            "Envelopes per consumed batch",
            ["service", "consumer"],
            registry=registry,
            buckets=BATCH_SIZE_BUCKETS,
        )
