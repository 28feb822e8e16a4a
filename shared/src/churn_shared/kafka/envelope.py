"""The one envelope every topic carries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from churn_shared.contracts.base import EventContract
from churn_shared.fields import StrictInt, Timestamp


class EnvelopeError(ValueError):
    """A message that is not a valid envelope (it goes to the dead-letter topic)."""


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1, max_length=64)
    event_type: str = Field(min_length=1)
    schema_version: StrictInt = Field(default=1, ge=1)
    tenant_id: str = Field(min_length=1, max_length=64)
    occurred_at: Timestamp = Field(default_factory=lambda: datetime.now(UTC))
    producer: str
    #: Partition key; every topic is keyed by customer id.
    key: str | None = None
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        *,
        tenant_id: str,
        producer: str,
        payload: BaseModel,
        key: str | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        event_type: str | None = None,
    ) -> Envelope:
        """Wrap a payload; an :class:`~churn_shared.contracts.EventContract` names its own
        ``event_type`` (and travels on its ``topic``).

        ``event_type`` is for payloads that are not contracts (tests); given with a contract it
        must be the contract's own.
        """
        own = payload.event_type if isinstance(payload, EventContract) else None
        if own is None and event_type is None:
            raise TypeError(f"{type(payload).__name__} is not an event contract: give event_type")
        if own is not None and event_type is not None and event_type != own:
            raise ValueError(
                f"{type(payload).__name__} is the event type {own!r}, not {event_type!r}"
            )
        data: dict[str, Any] = {
            "event_type": own or event_type,
            "tenant_id": tenant_id,
            "producer": producer,
            "key": key,
            "payload": payload.model_dump(mode="json"),
        }
        if event_id:
            data["event_id"] = event_id
        if occurred_at:
            data["occurred_at"] = occurred_at
        return cls(**data)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> Envelope:
        if raw is None:
            raise EnvelopeError("empty message")
        try:
            return cls.model_validate(orjson.loads(raw))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise EnvelopeError(str(exc)) from exc
