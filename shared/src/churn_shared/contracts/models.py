"""Contracts of the model registry: promotions (hot reload on every replica) and training progress.

New topics, new classes; nothing in :mod:`churn_shared.contracts.events` changes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from churn_shared.contracts.base import EventContract


class ModelTopics:
    """Topics of the model registry. Keyed by tenant id (one tenant's changes stay ordered)."""

    #: ``ModelPromotedV1``: an alias (``champion``/``challenger``) of a tenant moved.
    MODEL_EVENTS = "model.events.v1"
    #: ``TrainingProgressV1``: a training job's status, percentage and stage.
    TRAINING_PROGRESS = "model.training.v1"


class ModelPromotedV1(EventContract):
    """``alias`` of the envelope's tenant now points at ``version`` (``None``: alias removed,
    the tenant falls back to the global default). Every prediction replica reloads the tenant."""

    event_type: ClassVar[str] = "ModelPromotedV1"
    topic: ClassVar[str] = ModelTopics.MODEL_EVENTS

    tenant_id: str = Field(min_length=1, max_length=64)
    alias: Literal["champion", "challenger"]
    version: str | None = Field(default=None, max_length=64)
    previous_version: str | None = Field(default=None, max_length=64)
    reason: Literal["promote", "rollback", "trained"] = "promote"
    promoted_at: AwareDatetime


class TrainingProgressV1(EventContract):
    """A training job's state, published on every (throttled) progress step."""

    event_type: ClassVar[str] = "TrainingProgressV1"
    topic: ClassVar[str] = ModelTopics.TRAINING_PROGRESS

    job_id: str = Field(min_length=1, max_length=64)
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: int = Field(ge=0, le=100)
    stage: str = ""
    model_version: str | None = None
    error: str | None = None
    updated_at: AwareDatetime
