"""Routes of file batch jobs: upload a CSV or Parquet file, follow the job, stream its results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import FileResponse, Response

from churn_prediction.batch_jobs.schemas import (
    CONTENT_TYPES,
    ERRORS,
    MEDIA_TYPES,
    RESULTS,
    FileFormat,
    PredictionJobRead,
)
from churn_prediction.dependencies import (
    PredictionJobRunnerDep,
    PredictionJobServiceDep,
    PredictionServiceDep,
    SettingsDep,
)
from churn_prediction.exceptions import PredictionJobNotFoundError, UnsupportedJobFileError
from churn_shared.errors import PROBLEM_RESPONSES
from churn_shared.security import Principal, require_role

#: Like every scoring endpoint: analyst or higher; an API key needs its ``predictions`` scope.
ScorerDep = Annotated[Principal, Depends(require_role("analyst", scope="predictions"))]

jobs_router = APIRouter(prefix="/v1/predictions/jobs", tags=["predictions"])

_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@jobs_router.post(
    "",
    status_code=202,
    response_model=PredictionJobRead,
    operation_id="prediction_jobs_create",
    summary="Score a CSV or Parquet file in the background (up to 1,000,000 rows)",
    responses={
        **PROBLEM_RESPONSES,
        413: {"description": "The file is larger than the limits (bytes or rows)"},
        415: {"description": "Neither CSV nor Parquet"},
    },
    openapi_extra=_FILE_BODY,
)
async def create_prediction_job(
    request: Request,
    principal: ScorerDep,
    service: PredictionServiceDep,
    runner: PredictionJobRunnerDep,
    id_column: str | None = Query(
        default="customer_id",
        min_length=1,
        max_length=200,
        description="A column copied into the results next to each score, when the file has it.",
    ),
) -> Response:
    """The body is the file itself (`Content-Type: text/csv` or
    `application/vnd.apache.parquet`), streamed to disk as it arrives. Columns named like the
    model's features are scored (others are ignored; a missing feature is unknown); a CSV
    needs a header line. Limits: `max_job_bytes` (default 512 MiB) and `max_job_rows`
    (1,000,000): 413 beyond. The job is scored with the tenant's champion at upload time, in
    a process of its own; follow it at `GET /v1/predictions/jobs/{job_id}` or on the live feed
    (`prediction_job_progress`)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    input_format = CONTENT_TYPES.get(media)
    if input_format is None:
        raise UnsupportedJobFileError(
            f"Send the file as text/csv or application/vnd.apache.parquet, not {media or 'none'}."
        )
    serving = service.models.for_tenant(principal.tenant_id)
    job = await runner.submit(
        principal.tenant_id,
        serving,
        request.stream(),
        input_format=input_format,
        id_column=id_column,
    )
    return Response(
        job.model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={"Location": f"/v1/predictions/jobs/{job.job_id}"},
    )


@jobs_router.get(
    "/{job_id}",
    response_model=PredictionJobRead,
    operation_id="prediction_jobs_get",
    summary="A file batch job's status and row counts",
    responses=PROBLEM_RESPONSES,
)
async def get_prediction_job(
    job_id: str, principal: ScorerDep, jobs: PredictionJobServiceDep
) -> PredictionJobRead:
    return await jobs.get(principal.tenant_id, job_id)


@jobs_router.get(
    "/{job_id}/result",
    response_class=Response,
    operation_id="prediction_jobs_result",
    summary="The scores of a succeeded job, streamed as CSV or Parquet",
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        **PROBLEM_RESPONSES,
        409: {"description": "The job has not succeeded (yet)"},
    },
)
async def get_prediction_job_result(
    job_id: str,
    principal: ScorerDep,
    jobs: PredictionJobServiceDep,
    runner: PredictionJobRunnerDep,
    settings: SettingsDep,
    format: FileFormat = Query(default="csv", description="csv or parquet"),
) -> Response:
    """One row per scored input row: `line` (the input's line, header = 1, for CSV; the row
    number from 1 for Parquet), the id column when the file had it, `churn_probability` and
    `risk_level`. Bad rows are left out and listed at `.../errors`. The CSV is made from the
    Parquet result on the first request for it (seconds for a million rows)."""
    path = await jobs.result_file(
        principal.tenant_id, job_id, settings.prediction_jobs_dir, RESULTS[format]
    )
    if format == "csv":
        await runner.csv_result(path.parent)
    return _file(path, MEDIA_TYPES[format], f"predictions-{job_id}.{format}")


@jobs_router.get(
    "/{job_id}/errors",
    response_class=Response,
    operation_id="prediction_jobs_errors",
    summary="The bad rows of a succeeded job, by line (CSV)",
    responses={200: {"content": {"text/csv": {}}}, **PROBLEM_RESPONSES},
)
async def get_prediction_job_errors(
    job_id: str, principal: ScorerDep, jobs: PredictionJobServiceDep, settings: SettingsDep
) -> Response:
    """`line,column,value,error` per bad value or malformed row (the first
    `job_max_error_rows`, default 10,000; `rows_failed` counts them all)."""
    path = await jobs.result_file(principal.tenant_id, job_id, settings.prediction_jobs_dir, ERRORS)
    return _file(path, MEDIA_TYPES["csv"], f"errors-{job_id}.csv")


def _file(path: Any, media_type: str, filename: str) -> Response:
    if not path.is_file():
        raise PredictionJobNotFoundError("The job's files are gone.")
    return FileResponse(path, media_type=media_type, filename=filename)
