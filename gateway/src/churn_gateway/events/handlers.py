"""Translate alert and score envelopes into live-feed messages for the tenant's room."""

from __future__ import annotations

from collections.abc import Sequence

import socketio
from pydantic import ValidationError

from churn_gateway.realtime import broadcast
from churn_gateway.schemas import (
    CHURN_ALERT_EVENT,
    SCORE_UPDATE_EVENT,
    TRAINING_PROGRESS_EVENT,
    LiveMessage,
)
from churn_shared.contracts import (
    ChurnAlertRaisedV1,
    ChurnScoreComputedV1,
    ModelTopics,
    Topics,
    TrainingProgressV1,
)
from churn_shared.kafka import Envelope
from churn_shared.kafka.consumer import Delivery
from churn_shared.logging import get_logger

_log = get_logger(__name__)

LIVE_FEED_TOPICS: tuple[str, ...] = (
    Topics.CHURN_ALERTS,
    Topics.CHURN_SCORES,
    ModelTopics.TRAINING_PROGRESS,
)


def live_message(topic: str, envelope: Envelope) -> LiveMessage | None:
    """The message a delivery becomes on the feed, or ``None`` if it is not shown live."""
    try:
        if topic == Topics.CHURN_ALERTS and envelope.event_type == "ChurnAlertRaisedV1":
            alert = ChurnAlertRaisedV1.model_validate(envelope.payload)
            return LiveMessage(
                event=CHURN_ALERT_EVENT,
                tenant_id=envelope.tenant_id,
                payload=alert.model_dump(mode="json"),
            )
        if topic == Topics.CHURN_SCORES and envelope.event_type == "ChurnScoreComputedV1":
            score = ChurnScoreComputedV1.model_validate(envelope.payload)
            if score.backfill:
                return None
            return LiveMessage(
                event=SCORE_UPDATE_EVENT,
                tenant_id=envelope.tenant_id,
                payload=score.model_dump(mode="json"),
            )
        if topic == ModelTopics.TRAINING_PROGRESS and envelope.event_type == "TrainingProgressV1":
            progress = TrainingProgressV1.model_validate(envelope.payload)
            return LiveMessage(
                event=TRAINING_PROGRESS_EVENT,
                tenant_id=envelope.tenant_id,
                payload=progress.model_dump(mode="json"),
            )
    except ValidationError as exc:
        # The owning consumers dead-letter bad payloads; the live feed just leaves them out.
        _log.warning("live_feed_payload_invalid", event_id=envelope.event_id, error=str(exc)[:500])
    return None


class LiveFeedHandler:
    """A :class:`BatchConsumer` handler that emits each delivery to its tenant's room."""

    def __init__(self, sio: socketio.AsyncServer) -> None:
        self._sio = sio
        self.emitted = 0

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        for delivery in deliveries:
            message = live_message(delivery.topic, delivery.envelope)
            if message is None:
                continue
            await broadcast(self._sio, message)
            self.emitted += 1
