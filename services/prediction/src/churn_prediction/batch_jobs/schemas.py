"""Shapes of file batch jobs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "running", "succeeded", "failed"]
FileFormat = Literal["csv", "parquet"]

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

    @classmethod
    def read(cls, directory: Path) -> JobSpec:
        return cls(**json.loads((directory / SPEC).read_text()))

    def write(self, directory: Path) -> None:
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        (directory / SPEC).write_text(json.dumps(fields))


class PredictionJobRead(BaseModel):
    """A file batch job: its state and row counts. ``progress`` is the share of rows read."""

    job_id: str
    status: JobStatus
    input_format: FileFormat
    input_bytes: int = Field(ge=0)
    model_version: str
    id_column: str | None
    progress: int = Field(ge=0, le=100)
    rows_total: int | None = Field(
        description="Rows in the file (counted on upload for CSV, from the footer for Parquet)."
    )
    rows_scored: int
    rows_failed: int = Field(description="Bad rows, listed by line at `.../errors`.")
    attempts: int = Field(description="Times a runner started the job (a restart resumes it).")
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
