"""Contracts of background jobs (files scored or imported in the background): their progress.

New topics, new classes; nothing in :mod:`churn_shared.contracts.events` changes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field

from churn_shared.contracts.base import EventContract


class JobTopics:
    """Topics of background jobs. Keyed by job id."""

    #: ``PredictionJobProgressV1``: a file batch job's status and row counts.
    PREDICTION_JOBS = "prediction.jobs.v1"
    #: ``CustomerImportProgressV1``: a customer file import's status and row counts.
    CUSTOMER_IMPORTS = "customer.imports.v1"


class PredictionJobProgressV1(EventContract):
    """A file batch job's state, published on every (throttled) progress step."""

    event_type: ClassVar[str] = "PredictionJobProgressV1"
    topic: ClassVar[str] = JobTopics.PREDICTION_JOBS

    job_id: str = Field(min_length=1, max_length=64)
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: int = Field(ge=0, le=100)
    rows_total: int | None = Field(default=None, ge=0)
    rows_scored: int = Field(default=0, ge=0)
    rows_failed: int = Field(default=0, ge=0)
    error: str | None = None
    updated_at: AwareDatetime


class CustomerImportProgressV1(EventContract):
    """A customer file import's state (``POST /v1/customers/import``), published when it is
    queued, after each committed batch (throttled) and when it ends."""

    event_type: ClassVar[str] = "CustomerImportProgressV1"
    topic: ClassVar[str] = JobTopics.CUSTOMER_IMPORTS

    import_id: str = Field(min_length=1, max_length=64)
    status: Literal["queued", "running", "succeeded", "failed"]
    #: Share of the rows processed, 0..100 (100 once succeeded).
    progress: int = Field(ge=0, le=100)
    #: Rows in the file once counted (``None`` before).
    total_rows: int | None = Field(default=None, ge=0)
    processed_rows: int = Field(default=0, ge=0)
    rows_imported: int = Field(default=0, ge=0)
    rows_rejected: int = Field(default=0, ge=0)
    failure: str | None = None
    updated_at: AwareDatetime
