"""What every contract is: a frozen pydantic model; an event contract also names its wire type
and its topic, so no producer or consumer spells either again."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """A shape two services agree on: immutable, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class EventContract(Contract):
    """The payload of one kind of :class:`churn_shared.kafka.Envelope`.

    ``event_type`` is the envelope's ``event_type`` on the wire and ``topic`` the topic the
    event travels on. Both are part of the wire format: producers outside this repository
    depend on them, so they never change (a breaking change is a new class and a new version).
    """

    event_type: ClassVar[str]
    topic: ClassVar[str]
