"""Translate alert and score envelopes into live-feed messages for the tenant's room."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import socketio
from pydantic import ValidationError

from churn_gateway.realtime import broadcast
from churn_gateway.schemas import (
    ALERT_CHANNEL_DISABLED_EVENT,
    ALERT_UPDATED_EVENT,
    CHURN_ALERT_EVENT,
    IMPORT_PROGRESS_EVENT,
    PREDICTION_JOB_PROGRESS_EVENT,
    SCORE_UPDATE_EVENT,
    TRAINING_PROGRESS_EVENT,
    LiveMessage,
)
from churn_shared.contracts import (
    AlertChannelDisabledV1,
    ChurnAlertRaisedV1,
    ChurnAlertUpdatedV1,
    ChurnScoreComputedV1,
    CustomerImportProgressV1,
    EventContract,
    PredictionJobProgressV1,
    TrainingProgressV1,
    contract_for,
)
from churn_shared.kafka import Envelope
from churn_shared.kafka.consumer import Delivery
from churn_shared.logging import get_logger

_log = get_logger(__name__)

#: The contracts shown live, and the Socket.IO event each becomes.
LIVE_EVENTS: dict[type[EventContract], str] = {
    ChurnAlertRaisedV1: CHURN_ALERT_EVENT,
    ChurnAlertUpdatedV1: ALERT_UPDATED_EVENT,
    AlertChannelDisabledV1: ALERT_CHANNEL_DISABLED_EVENT,
    ChurnScoreComputedV1: SCORE_UPDATE_EVENT,
    TrainingProgressV1: TRAINING_PROGRESS_EVENT,
    PredictionJobProgressV1: PREDICTION_JOB_PROGRESS_EVENT,
    CustomerImportProgressV1: IMPORT_PROGRESS_EVENT,
}
LIVE_FEED_TOPICS: tuple[str, ...] = tuple(dict.fromkeys(c.topic for c in LIVE_EVENTS))


def live_message(topic: str, envelope: Envelope) -> LiveMessage | None:
    """The message a delivery becomes on the feed, or ``None`` if it is not shown live."""
    contract = contract_for(envelope.event_type)
    if contract is None or contract.topic != topic or contract not in LIVE_EVENTS:
        return None
    try:
        payload = contract.model_validate(envelope.payload)
    except ValidationError as exc:
        # The owning consumers dead-letter bad payloads; the live feed just leaves them out.
        _log.warning("live_feed_payload_invalid", event_id=envelope.event_id, error=str(exc)[:500])
        return None
    if isinstance(payload, ChurnScoreComputedV1) and payload.backfill:
        return None
    data = payload.model_dump(mode="json")
    if isinstance(payload, ChurnAlertRaisedV1):
        data = raised_alert_payload(data)
    return LiveMessage(event=LIVE_EVENTS[contract], tenant_id=envelope.tenant_id, payload=data)


def raised_alert_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """``churn_alert`` in the shape of the REST alert (``id``, ``status``: a raised alert is
    open). ``alert_id`` is kept for clients written against the first shape; it is deprecated
    (docs/live-feed.md) and will go with a v2 of the event."""
    return {"id": alert["alert_id"], "status": "open", **alert}


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
