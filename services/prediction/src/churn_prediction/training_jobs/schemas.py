"""Request and response shapes of training jobs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from churn_prediction.registry.schemas import Horizon
from churn_shared.fields import DateString


class TrainingCreate(BaseModel):
    """Train a tenant model: on point-in-time sets built from the event history (``events``:
    one ``cutoff`` or several ``cutoffs`` stacked, time-ordered cross-validation), or on the
    imported customer attributes with a ``label`` column (``customers``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"source": "events", "cutoff": "2011-06-01", "horizon_days": 90},
                {"source": "customers", "label": "Churn"},
            ],
            # What ``_source_fields`` enforces, declared for generated clients (null = not
            # given): events with exactly one of cutoff and cutoffs, or customers with a label.
            "oneOf": [
                {
                    "title": "events, one cutoff",
                    "required": ["source", "cutoff"],
                    "properties": {
                        "source": {"const": "events"},
                        "cutoff": {"type": "string"},
                        "cutoffs": {"type": "null"},
                        "label": {"type": "null"},
                        "features": {"type": "null"},
                    },
                },
                {
                    "title": "events, several cutoffs",
                    "required": ["source", "cutoffs"],
                    "properties": {
                        "source": {"const": "events"},
                        "cutoff": {"type": "null"},
                        "cutoffs": {"type": "array"},
                        "label": {"type": "null"},
                        "features": {"type": "null"},
                    },
                },
                {
                    "title": "customers",
                    "required": ["source", "label"],
                    "properties": {
                        "source": {"const": "customers"},
                        "cutoff": {"type": "null"},
                        "cutoffs": {"type": "null"},
                        "label": {"type": "string"},
                    },
                },
            ],
        },
    )

    source: Literal["events", "customers"]
    cutoff: DateString | None = None
    cutoffs: list[DateString] | None = Field(default=None, min_length=1, max_length=24)
    horizon_days: Horizon = 90
    label: str | None = Field(default=None, min_length=1, max_length=200)
    features: list[str] | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _source_fields(self) -> TrainingCreate:
        if self.source == "events":
            if (self.cutoff is None) == (self.cutoffs is None):
                raise ValueError("events training needs exactly one of cutoff or cutoffs")
            if self.label is not None or self.features is not None:
                raise ValueError("label and features apply to customers training only")
        else:
            if self.label is None:
                raise ValueError("customers training needs a label column")
            if self.cutoff is not None or self.cutoffs is not None:
                raise ValueError("cutoff(s) apply to events training only")
        return self

    def cutoff_list(self) -> list[date]:
        return sorted(set(self.cutoffs or ([self.cutoff] if self.cutoff else [])))


class TrainingJobAccepted(BaseModel):
    job_id: str


JobStatus = Literal["queued", "running", "succeeded", "failed"]


class TrainingJobRead(BaseModel):
    job_id: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    stage: str
    model_version: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime
