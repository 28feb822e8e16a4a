"""Shapes of file batch jobs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "running", "succeeded", "failed"]
FileFormat = Literal["csv", "parquet"]
#: What a job scores: an uploaded file, or the customers a filter selects (``customers``).
JobInput = Literal["csv", "parquet", "customers"]
JobSource = Literal["file", "customers"]

#: Content types of an uploaded file, by format.
CONTENT_TYPES: dict[str, FileFormat] = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
MEDIA_TYPES: dict[FileFormat, str] = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}


#: A job's files in its directory: the upload, the pickled model and the spec (written by the
#: API process), the results and the error report (written by the child process).
INPUTS: dict[FileFormat, str] = {"csv": "input.csv", "parquet": "input.parquet"}
MODEL = "model.pkl"
SPEC = "spec.json"
RESULTS: dict[FileFormat, str] = {"csv": "result.csv", "parquet": "result.parquet"}
ERRORS = "errors.csv"
#: A filter job's input (``input.csv``) while its customers are being read; renamed when done.
PARTIAL_INPUT = "input.csv.partial"
#: In a filter job's input: why a customer cannot be scored (empty when it can).
UNSCORABLE_COLUMN = "__unscorable__"
#: The id column of a filter job's input and results.
CUSTOMER_ID = "customer_id"
#: In the jobs directory itself: what the worker processes write to stderr.
WORKER_LOG = "workers.log"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the child process needs besides the file and the model."""

    input_format: FileFormat
    id_column: str | None
    low_risk_below: float
    high_risk_from: float
    max_rows: int
    chunk_rows: int
    max_error_rows: int
    #: Rows counted while the file was uploaded (CSV), for progress before parsing.
    rows_hint: int | None = None
    #: ``customers``: the input was read from the customers service for a filter (``line`` is
    #: then the customer's rank in the selection and the error report names the customer).
    source: JobSource = "file"
    #: Top drivers written beside each score (``?drivers=true``: ``drivers_top_k``), 0 for none.
    drivers: int = 0

    @classmethod
    def read(cls, directory: Path) -> JobSpec:
        return cls(**json.loads((directory / SPEC).read_text()))

    def write(self, directory: Path) -> None:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        (directory / SPEC).write_text(json.dumps(fields))


class PredictionJobRead(BaseModel):
    """A batch job: what it scores (a file or a customer filter), its state and row counts.
    ``progress`` is the share of rows read."""

    job_id: str
    status: JobStatus
    input_format: JobInput = Field(
        description="`csv` or `parquet` for a file; `customers` for a job over a filter."
    )
    input_bytes: int = Field(ge=0, description="The file's size (0 for a filter job).")
    model_version: str
    id_column: str | None
    customers: dict[str, Any] | None = Field(
        description="A filter job's customer filter, exactly as submitted in the body's "
        "`customers` (`{}`: every customer); `null` for a file."
    )
    drivers: bool = Field(
        description="Whether each score's top drivers are written beside it in the results: "
        "`?drivers=true` was asked (and the service's `drivers_top_k` is not 0)."
    )
    progress: int = Field(ge=0, le=100)
    rows_total: int | None = Field(
        description="Rows in the file (counted on upload for CSV, from the footer for Parquet); "
        "for a filter job, the customers it matched when submitted, then those read."
    )
    rows_scored: int
    rows_failed: int = Field(description="Bad rows, listed by line at `.../errors`.")
    attempts: int = Field(description="Times a runner started the job (a restart resumes it).")
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class PredictionJobCustomersIn(BaseModel):
    """``POST /v1/predictions/jobs`` as JSON: score the tenant's customers that a filter
    selects, instead of a file."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"customers": {"risk_level": ["high", "medium"], "attributes": {"plan": "gold"}}},
                {"customers": {"segment": "2b1d6c0e-4f7a-4a51-9a43-3f8e2f1d9c10"}},
                {"customers": {}},
            ]
        },
    )

    customers: dict[str, Any] = Field(
        description="The filters of `GET /v1/customers`, as JSON (the same object as a cohort's "
        "or `POST /v1/customers/bulk`'s `filter`): `risk_level` (a list), `min_probability`, "
        "`max_probability`, `q`, `seen_after`, `seen_before`, `attributes` (name → value), "
        "`tag`, `segment`. `{}` selects every customer. The customers service checks it: a "
        "bad filter is a 422 naming the reason.",
    )
