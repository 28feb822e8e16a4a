"""Routes of batch jobs: upload a CSV or Parquet file (or name customers by a filter), follow
the job, stream its results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.responses import FileResponse, Response

from churn_prediction.batch_jobs.schemas import (
    CONTENT_TYPES,
    ERRORS,
    MEDIA_TYPES,
    RESULTS,
    FileFormat,
    PredictionJobCustomersIn,
    PredictionJobRead,
)
from churn_prediction.dependencies import (
    PredictionJobRunnerDep,
    PredictionJobServiceDep,
    PredictionServiceDep,
    SettingsDep,
)
from churn_prediction.exceptions import (
    CustomerFilterRefusedError,
    JobFileTooLargeError,
    PredictionJobNotFoundError,
    UnsupportedJobFileError,
)
from churn_shared.errors import PROBLEM_RESPONSES
from churn_shared.security import Principal, forwarded_authorization, require_role

#: Like every scoring endpoint: analyst or higher; an API key needs its ``predictions`` scope.
ScorerDep = Annotated[Principal, Depends(require_role("analyst", scope="predictions"))]

jobs_router = APIRouter(prefix="/v1/predictions/jobs", tags=["predictions"])

#: Largest JSON body (a customer filter) of ``POST /v1/predictions/jobs``.
MAX_FILTER_BODY_BYTES = 64 * 1024

_FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": PredictionJobCustomersIn.model_json_schema()},
        },
    }
}


@jobs_router.post(
    "",
    status_code=202,
    response_model=PredictionJobRead,
    operation_id="prediction_jobs_create",
    summary="Score a CSV or Parquet file, or the customers a filter selects, in the background "
    "(up to 1,000,000 rows)",
    responses={
        **PROBLEM_RESPONSES,
        413: {"description": "The file is larger than the limits (bytes or rows)"},
        415: {"description": "Neither CSV, Parquet nor a JSON customer filter"},
        422: {"description": "A file that cannot be read, or a customer filter refused"},
        503: {"description": "The customers service cannot be reached (a filter job)"},
    },
    openapi_extra=_FILE_BODY,
)
async def create_prediction_job(
    request: Request,
    principal: ScorerDep,
    service: PredictionServiceDep,
    runner: PredictionJobRunnerDep,
    settings: SettingsDep,
    id_column: str | None = Query(
        default="customer_id",
        min_length=1,
        max_length=200,
        description="A column copied into the results next to each score, when the file has it.",
    ),
    drivers: bool = Query(
        default=False,
        description="Write each score's top drivers beside it (`driver_1` … the feature, "
        "`driver_1_contribution` … its log-odds contribution, largest first).",
    ),
) -> Response:
    """The body is the file itself (`Content-Type: text/csv` or
    `application/vnd.apache.parquet`), streamed to disk as it arrives. Columns named like the
    model's features are scored (others are ignored; a missing feature is unknown); a CSV
    needs a header line. Limits: `max_job_bytes` (default 512 MiB) and `max_job_rows`
    (1,000,000): 413 beyond. The job is scored with the tenant's champion at upload time, in
    a process of its own; follow it at `GET /v1/predictions/jobs/{job_id}` or on the live feed
    (`prediction_job_progress`).

    With `Content-Type: application/json` the body names customers instead of a file:
    `{"customers": {...}}`, the filters of `GET /v1/customers` (see the schema). The customers
    service counts them first (a bad filter is a 422; more than `max_job_rows` a 422 too), then
    their feature profiles and imported attributes are read page by page and scored like a CSV
    file: results with `customer_id`, `line` being the customer's rank in the selection (by
    id, from 1), and customers that cannot be scored (no feature profile yet) listed at
    `.../errors` with their `customer_id` and the reason. `id_column` does not apply."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    top_k = settings.drivers_top_k if drivers else 0
    if media == "application/json":
        selection = await _customer_selection(request)
        job = await runner.submit_customers(
            principal.tenant_id,
            service.models.for_tenant(principal.tenant_id),
            selection.customers,
            authorization=forwarded_authorization(request),
            drivers=top_k,
        )
        return _accepted(job)
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
        drivers=top_k,
    )
    return _accepted(job)


def _accepted(job: PredictionJobRead) -> Response:
    return Response(
        job.model_dump_json(),
        status_code=202,
        media_type="application/json",
        headers={"Location": f"/v1/predictions/jobs/{job.job_id}"},
    )


async def _customer_selection(request: Request) -> PredictionJobCustomersIn:
    """The JSON body (a customer filter), read up to :data:`MAX_FILTER_BODY_BYTES`."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FILTER_BODY_BYTES:
            raise JobFileTooLargeError(
                f"A customer filter is at most {MAX_FILTER_BODY_BYTES} bytes of JSON."
            )
    try:
        return PredictionJobCustomersIn.model_validate_json(bytes(body))
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        raise CustomerFilterRefusedError(f"The body is not a customer filter: {reasons}.") from exc


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
