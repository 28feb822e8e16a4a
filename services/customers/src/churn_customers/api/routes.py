"""HTTP routes: parse, call one service method, return."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError

from churn_customers.dashboard import MAX_TREND_DAYS
from churn_customers.dependencies import (
    BulkServiceDep,
    CohortServiceDep,
    CustomerServiceDep,
    DashboardServiceDep,
    EventIngestServiceDep,
    ExportServiceDep,
    ImportRunnerDep,
    ImportServiceDep,
    RetentionServiceDep,
    TrainingSetServiceDep,
)
from churn_customers.exporting import ExportFormat
from churn_customers.imports import error_report
from churn_customers.retention import MAX_RETENTION_COHORTS
from churn_customers.schemas import (
    BulkActionIn,
    BulkActionResult,
    CohortCreate,
    CohortList,
    CohortRead,
    CohortStats,
    CohortUpdate,
    CustomerCreate,
    CustomerDetail,
    CustomerFeaturesRead,
    CustomerFilter,
    CustomerPage,
    CustomerRead,
    CustomerSort,
    CustomersSummary,
    CustomerTrainingSet,
    CustomerUpdate,
    EventBatchAccepted,
    EventBatchIn,
    EventTrainingSet,
    ImportRead,
    RetentionCurves,
    RetentionPeriod,
    RiskLevel,
    RiskTrend,
    ScoreHistoryPage,
    ScoringInputsIn,
    ScoringInputsPage,
)
from churn_customers.service import HORIZONS, parse_cutoff
from churn_shared.errors import PROBLEM_RESPONSES, UnprocessableError, problem_doc
from churn_shared.fields import Timestamp
from churn_shared.security import Principal, PrincipalDep, require_role

#: Changing data needs the analyst role or higher; reading needs any role.
WriterDep = Annotated[Principal, Depends(require_role("analyst"))]
#: Deleting customers needs the admin role.
AdminDep = Annotated[Principal, Depends(require_role("admin"))]

events_router = APIRouter(prefix="/v1/events", tags=["events"], responses=PROBLEM_RESPONSES)
customers_router = APIRouter(
    prefix="/v1/customers", tags=["customers"], responses=PROBLEM_RESPONSES
)


@events_router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=EventBatchAccepted,
    operation_id="events_ingest",
    responses={409: problem_doc("A concurrent request stored the same events; retry")},
)
async def ingest_events(
    body: EventBatchIn,
    principal: WriterDep,
    service: EventIngestServiceDep,
    backfill: Annotated[
        bool, Query(description="Historical events: scored, never alerted")
    ] = False,
) -> EventBatchAccepted:
    """Store a batch of customer events and refresh the affected customers' features."""
    return await service.record_events(principal.tenant_id, body.events, backfill=backfill)


#: Query parameters ``attr.<name>=<value>``: equality on an imported attribute.
ATTRIBUTE_PARAMETER_PREFIX = "attr."
#: The ``attr.<name>`` parameters in the OpenAPI document (a name pattern, not a name).
_ATTRIBUTE_FILTER_PARAMETER = {
    "name": "attr.{name}",
    "in": "query",
    "required": False,
    "description": "Equality on an imported attribute, compared as text: `attr.plan=gold`, "
    "`attr.seats=3`, `attr.vip=true`. At most 10; combined with every other filter.",
    "schema": {"type": "string", "maxLength": 255},
    "example": "gold",
}


def customer_filter(
    request: Request,
    risk_level: Annotated[
        list[RiskLevel] | None,
        Query(description="Latest risk level; repeat for several (any of them)"),
    ] = None,
    min_probability: Annotated[
        float | None, Query(ge=0.0, le=1.0, description="Latest churn probability ≥ this")
    ] = None,
    max_probability: Annotated[
        float | None, Query(ge=0.0, le=1.0, description="Latest churn probability ≤ this")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="Prefix of the customer id, or of the email or name attribute "
            "(case-insensitive)",
        ),
    ] = None,
    seen_after: Annotated[
        Timestamp | None, Query(description="Last activity (updated_at) at or after this")
    ] = None,
    seen_before: Annotated[
        Timestamp | None, Query(description="Last activity (updated_at) before this")
    ] = None,
    tag: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Customers with this tag")
    ] = None,
    segment: Annotated[
        str | None,
        Query(min_length=1, max_length=36, description="Members of this saved cohort (its id)"),
    ] = None,
) -> CustomerFilter:
    """The customer filter of a request's query, ``attr.<name>=<value>`` parameters included
    (at most 10; each is an equality on an imported attribute, compared as text)."""
    attributes = {
        key.removeprefix(ATTRIBUTE_PARAMETER_PREFIX): value
        for key, value in request.query_params.multi_items()
        if key.startswith(ATTRIBUTE_PARAMETER_PREFIX)
    }
    try:
        return CustomerFilter(
            risk_level=risk_level,
            min_probability=min_probability,
            max_probability=max_probability,
            q=q,
            seen_after=seen_after,
            seen_before=seen_before,
            attributes=attributes,
            tag=tag,
            segment=segment,
        )
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'filter'}: {error['msg']}"
            for error in exc.errors()
        )
        raise UnprocessableError(f"The customer filter is not valid: {reasons}.") from exc


CustomerFilterDep = Annotated[CustomerFilter, Depends(customer_filter)]


@customers_router.get(
    "",
    response_model=CustomerPage,
    operation_id="customers_list",
    openapi_extra={"parameters": [_ATTRIBUTE_FILTER_PARAMETER]},
)
async def list_customers(
    principal: PrincipalDep,
    service: CustomerServiceDep,
    where: CustomerFilterDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page; send the same filter")
    ] = None,
    sort: CustomerSort = "customer_id",
) -> CustomerPage:
    """The tenant's customers matching every filter given, in keyset pages.

    Filters combine (AND) with each other and with every sort order. Risk level, probability,
    activity dates and the id/e-mail/name prefix are index ranges; attribute filters are
    checked on the tenant's rows that the other filters leave."""
    return await service.list_customers(
        principal.tenant_id, limit=limit, cursor=cursor, sort=sort, where=where
    )


@customers_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CustomerRead,
    operation_id="customers_create",
    responses={409: problem_doc("A customer with this id exists already")},
)
async def create_customer(
    body: CustomerCreate, principal: WriterDep, service: CustomerServiceDep
) -> CustomerRead:
    return await service.create_customer(principal.tenant_id, body)


@customers_router.get("/{customer_id}", response_model=CustomerDetail, operation_id="customers_get")
async def get_customer(
    customer_id: str, principal: PrincipalDep, service: CustomerServiceDep
) -> CustomerDetail:
    return await service.get_customer(principal.tenant_id, customer_id)


@customers_router.patch(
    "/{customer_id}", response_model=CustomerRead, operation_id="customers_update"
)
async def update_customer(
    customer_id: str, body: CustomerUpdate, principal: WriterDep, service: CustomerServiceDep
) -> CustomerRead:
    return await service.update_customer(principal.tenant_id, customer_id, body)


@customers_router.delete(
    "/{customer_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="customers_delete",
)
async def delete_customer(
    customer_id: str, principal: AdminDep, service: CustomerServiceDep
) -> Response:
    """Delete the customer with their events, profile, score history and tags; the prediction
    and alerts services drop their scores and alerts (`CustomerDeletedV1`). Admins only."""
    await service.delete_customer(principal.tenant_id, customer_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@customers_router.get(
    "/{customer_id}/features",
    response_model=CustomerFeaturesRead,
    operation_id="customers_features",
)
async def get_customer_features(
    customer_id: str, principal: PrincipalDep, service: CustomerServiceDep
) -> CustomerFeaturesRead:
    return await service.get_features(principal.tenant_id, customer_id)


@customers_router.get(
    "/{customer_id}/scores",
    response_model=ScoreHistoryPage,
    operation_id="customers_scores",
)
async def get_customer_scores(
    customer_id: str,
    principal: PrincipalDep,
    service: CustomerServiceDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> ScoreHistoryPage:
    """The customer's risk over time: every score they received (time, probability, risk
    level, model version, top drivers), newest first, in keyset pages."""
    return await service.score_history(principal.tenant_id, customer_id, limit=limit, cursor=cursor)


#: Routes under /v1/customers with a fixed second segment, included before ``customers_router``.
workspace_router = APIRouter(
    prefix="/v1/customers", tags=["customers"], responses=PROBLEM_RESPONSES
)


@workspace_router.get(
    "/export",
    operation_id="customers_export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file, streamed: one row per customer (id order), then the "
            "columns customer_id, churn_probability, risk_level, model_version, scored_at, "
            "driver_1..3 (`feature=value (+contribution)`), first_seen_at, updated_at and one "
            "column per imported attribute.",
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "customer_id,churn_probability,risk_level,model_version,"
                    "scored_at,driver_1,driver_2,driver_3,first_seen_at,updated_at,plan\r\n"
                    "c-42,0.83,high,acme-7,2026-11-20T09:15:02+00:00,"
                    "payment_failures_last_90d=3 (+1.420),,,2026-01-05T10:00:00+00:00,"
                    "2026-11-20T09:15:00+00:00,gold\r\n",
                },
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
    openapi_extra={"parameters": [_ATTRIBUTE_FILTER_PARAMETER]},
)
async def export_customers(
    principal: WriterDep,
    service: ExportServiceDep,
    where: CustomerFilterDep,
    format: Annotated[ExportFormat, Query(description="csv (UTF-8 with BOM) or xlsx")] = "csv",
) -> StreamingResponse:
    """Every customer matching the filters (those of `GET /v1/customers`), with their latest
    score, risk level, top drivers and imported attributes, streamed as CSV or XLSX.

    Read page by page while it is sent, so memory stays flat however many customers match (at
    most 1,000,000 and 1,000 distinct attributes, else 422 before anything is sent). Text that
    a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage
    return) is prefixed with `'` (OWASP). Analysts and above."""
    prepared = await service.prepare(principal.tenant_id, where, format)
    return StreamingResponse(
        prepared.body,
        media_type=prepared.media_type,
        headers={"content-disposition": f'attachment; filename="{prepared.filename}"'},
    )


@workspace_router.post("/bulk", response_model=BulkActionResult, operation_id="customers_bulk")
async def bulk_action(
    body: BulkActionIn, principal: WriterDep, service: BulkServiceDep
) -> BulkActionResult:
    """Tag, untag or delete the customers of an id list or of a filter (the list's filters,
    as JSON), at most 10,000 at a time (else 422); `dry_run` counts them and changes nothing.

    Analysts tag and untag; deleting needs the admin role (403 otherwise). A deletion removes
    the customers' events, feature profiles, score histories and tags and publishes one
    `CustomerDeletedV1` per customer on `customer.deleted.v1`, on which the prediction and
    alerts services drop that customer's scores and alerts. Ids that do not exist (or belong to
    another tenant) are not counted."""
    return await service.apply(principal, body)


imports_router = APIRouter(prefix="/v1/customers", tags=["customers"], responses=PROBLEM_RESPONSES)
training_sets_router = APIRouter(
    prefix="/v1/training-sets", tags=["training-sets"], responses=PROBLEM_RESPONSES
)

_IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": (
                                "CSV (UTF-8 with or without BOM, or Latin-1/Windows-1252; "
                                "delimiter `,` `;` or tab) or XLSX (the first worksheet; "
                                "formulas are not evaluated: their cached value is read) "
                                "with a header row. XLS and ODS are refused with 415."
                            ),
                        },
                        "mapping": {
                            "type": "string",
                            "contentMediaType": "application/json",
                            "description": (
                                "Which column is what, as a JSON object: `id` (required), "
                                "`email` and `name` (stored as the attributes `email` and "
                                "`name`), `label` (kept under its own name), `attributes` "
                                "(the other columns kept; null or absent: every one). "
                                "Columns the header lacks, a column named twice or unknown "
                                "keys are refused with 422."
                            ),
                            "example": (
                                '{"id": "customerID", "email": "Email", "name": "Name", '
                                '"label": "Churn", "attributes": ["plan", "tenure"]}'
                            ),
                        },
                        "id_column": {
                            "type": "string",
                            "default": "customer_id",
                            "description": (
                                "The column holding each customer's id, when there is no "
                                "`mapping` (every other column is kept)"
                            ),
                        },
                    },
                },
                "encoding": {"mapping": {"contentType": "application/json"}},
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            "description": (
                "Retries with the same key return the import the first upload created "
                "(200), whatever happened to the connection; the same key with another file "
                "or mapping is refused with 422."
            ),
        }
    ],
}


@imports_router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportRead,
    operation_id="customers_import",
    openapi_extra=_IMPORT_BODY,
    responses={
        200: {
            "model": ImportRead,
            "description": "The same file and mapping, or the same Idempotency-Key, was "
            "uploaded before: that import (nothing new is queued)",
        },
        413: {
            **PROBLEM_RESPONSES[422],
            "description": "Too many bytes or rows, or an XLSX whose zip directory declares "
            "more than the uncompressed-size or compression-ratio limits (a zip bomb)",
        },
        409: problem_doc(
            "An upload with the same Idempotency-Key is being stored at this moment; retry"
        ),
        415: {**PROBLEM_RESPONSES[422], "description": "XLS, ODS or another unread format"},
        429: {**PROBLEM_RESPONSES[422], "description": "Too many imports of this tenant in flight"},
    },
)
async def import_customers(
    request: Request,
    response: Response,
    background: BackgroundTasks,
    principal: WriterDep,
    service: ImportServiceDep,
    runner: ImportRunnerDep,
) -> ImportRead:
    """Upload a customer file (CSV or XLSX) with its column mapping; it is stored and imported
    in the background (poll the import, or follow `import_progress` on the live feed).

    Cells are typed (numbers as numbers, blanks as null) and merged into each customer's
    attributes; rows with errors are skipped whole and listed at
    `GET /v1/customers/imports/{id}/errors`. A file over the byte or row limit, or an XLSX
    zip bomb, is refused with 413, XLS/ODS with 415, undecodable text or a mapping that does
    not fit the header with 422, and an upload while the tenant has its maximum of imports
    queued or running with 429 (`Retry-After`); a refused file leaves nothing stored. The same
    file and mapping again, or the same `Idempotency-Key`, answers 200 with the earlier
    import instead of queueing another."""
    started = await service.start_import(
        principal.tenant_id,
        principal.subject,
        request.headers.get("content-type", ""),
        request.stream(),
        idempotency_key=request.headers.get("idempotency-key"),
    )
    if started.created:
        background.add_task(runner.wake)  # after the response, so after the commit
    else:
        response.status_code = status.HTTP_200_OK
    return started.read


@imports_router.get(
    "/imports/{import_id}", response_model=ImportRead, operation_id="customers_import_get"
)
async def get_import(
    import_id: str, principal: PrincipalDep, service: ImportServiceDep
) -> ImportRead:
    """An import's state: `processed_rows` of `total_rows` while it runs, its counts and first
    rejected rows once done."""
    return await service.get_import(principal.tenant_id, import_id)


@imports_router.get(
    "/imports/{import_id}/errors",
    operation_id="customers_import_errors",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The rejected rows as CSV (UTF-8 with a BOM): `line,column,value,"
            "reason`; text a spreadsheet would run as a formula is prefixed with `'`",
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": 'line,column,value,reason\r\n4,,,"expected 6 fields, found '
                    '4"\r\n5,customerID,,blank id\r\n',
                }
            },
        }
    },
)
async def get_import_errors(
    import_id: str, request: Request, principal: PrincipalDep, service: ImportServiceDep
) -> StreamingResponse:
    """Every row the import rejected (up to `max_import_error_rows`; `rows_rejected` counts
    them all), in file order: its line (1 = the header; the sheet's row number in an XLSX),
    the column and value at fault when one is, and why. Grows while the import runs."""
    await service.get_import(principal.tenant_id, import_id)  # 404 for another tenant's
    return StreamingResponse(
        error_report(request.app.state.session_factory, principal.tenant_id, import_id),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="import-{import_id[:36]}-errors.csv"'
        },
    )


def _json(body: BaseModel) -> Response:
    """A large body serialised once, by its model (no second validation on the way out)."""
    return Response(body.model_dump_json(), media_type="application/json")


@training_sets_router.get(
    "/customers",
    response_model=CustomerTrainingSet,
    operation_id="training_sets_customers",
)
async def customer_training_set(
    principal: PrincipalDep,
    service: TrainingSetServiceDep,
    label: Annotated[str, Query(min_length=1, description="The label attribute")],
) -> Response:
    """Imported attributes of the customers that have the label attribute (for training)."""
    return _json(await service.customer_training_set(principal.tenant_id, label))


@training_sets_router.get(
    "/events",
    response_model=EventTrainingSet,
    operation_id="training_sets_events",
)
async def event_training_set(
    principal: PrincipalDep,
    service: TrainingSetServiceDep,
    horizon_days: Annotated[
        int, Query(description="30, 60, 90 or 180", json_schema_extra={"enum": list(HORIZONS)})
    ],
    cutoff: Annotated[str | None, Query(description="YYYY-MM-DD (midnight UTC)")] = None,
    cutoffs: Annotated[
        list[str] | None, Query(description="Several cutoffs to stack (repeat the parameter)")
    ] = None,
) -> Response:
    """A point-in-time training set: features from events up to the cutoff, label = no order
    in (cutoff, cutoff + horizon_days]."""
    moments = [parse_cutoff(text) for text in [*([cutoff] if cutoff else []), *(cutoffs or [])]]
    return _json(await service.events_training_set(principal.tenant_id, moments, horizon_days))


cohorts_router = APIRouter(prefix="/v1/cohorts", tags=["cohorts"], responses=PROBLEM_RESPONSES)


@cohorts_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CohortRead,
    operation_id="cohorts_create",
    responses={409: problem_doc("The tenant has a cohort of this name already")},
)
async def create_cohort(
    body: CohortCreate, principal: WriterDep, service: CohortServiceDep
) -> CohortRead:
    """Save a segment: a name (unique in the tenant, else 409) and a customer filter (the
    list's filters as JSON, without `segment`). Use it as `segment=<id>` on the customer list,
    the export and bulk actions. At most 500 per tenant. Analysts and above."""
    return await service.create(principal.tenant_id, principal.subject, body)


@cohorts_router.get("", response_model=CohortList, operation_id="cohorts_list")
async def list_cohorts(principal: PrincipalDep, service: CohortServiceDep) -> CohortList:
    return await service.list(principal.tenant_id)


# Before /{cohort_id}: "retention" is not a cohort id.
@cohorts_router.get(
    "/retention",
    response_model=RetentionCurves,
    operation_id="cohorts_retention",
    openapi_extra={"parameters": [_ATTRIBUTE_FILTER_PARAMETER]},
)
async def cohort_retention(
    principal: PrincipalDep,
    service: RetentionServiceDep,
    where: CustomerFilterDep,
    period: Annotated[
        RetentionPeriod,
        Query(description="`month` (cohort `2010-12`) or `week` (ISO week, cohort `2010-W49`)"),
    ] = "month",
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_RETENTION_COHORTS,
            description="The latest this many periods' cohorts (up to the latest order)",
        ),
    ] = MAX_RETENTION_COHORTS,
) -> RetentionCurves:
    """Retention curves per acquisition cohort, from the tenant's `order_placed` events.

    A customer's cohort is the period of their first `order_placed`: a calendar month
    (`"2010-12"`) for `period=month`, an ISO 8601 week (Monday to Sunday, UTC, labelled by its
    ISO year and week number: `"2010-W49"`) for `period=week`. `retention[k]` is the share of
    the cohort's customers with at least one `order_placed` in period cohort + k, so
    `retention[0]` is 1.0; each curve runs to the period of the tenant's latest order (which
    may be incomplete), so newer cohorts have shorter curves. Cohorts are oldest first;
    periods in which nobody placed a first order are left out.

    The customer-list filters (`risk_level`, probabilities, `q`, `seen_after`/`seen_before`,
    `tag`, `segment`, `attr.<name>`) select whose orders count; an unknown `segment` is 404.
    Viewers and above."""
    return await service.curves(principal.tenant_id, period, where, limit)


@cohorts_router.get("/{cohort_id}", response_model=CohortRead, operation_id="cohorts_get")
async def get_cohort(
    cohort_id: str, principal: PrincipalDep, service: CohortServiceDep
) -> CohortRead:
    return await service.get(principal.tenant_id, cohort_id)


@cohorts_router.patch(
    "/{cohort_id}",
    response_model=CohortRead,
    operation_id="cohorts_update",
    responses={409: problem_doc("The tenant has a cohort of this name already")},
)
async def update_cohort(
    cohort_id: str, body: CohortUpdate, principal: WriterDep, service: CohortServiceDep
) -> CohortRead:
    return await service.update(principal.tenant_id, cohort_id, body)


@cohorts_router.delete(
    "/{cohort_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    operation_id="cohorts_delete",
)
async def delete_cohort(
    cohort_id: str, principal: WriterDep, service: CohortServiceDep
) -> Response:
    await service.delete(principal.tenant_id, cohort_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


#: How many days a trend covers: 1 to 365.
TrendDays = Annotated[int, Query(ge=1, le=MAX_TREND_DAYS, description="Days of trend (1-365)")]


@cohorts_router.get("/{cohort_id}/stats", response_model=CohortStats, operation_id="cohorts_stats")
async def cohort_stats(
    cohort_id: str, principal: PrincipalDep, service: CohortServiceDep, days: TrendDays = 30
) -> CohortStats:
    """The cohort's members now: size, risk mix, mean churn probability and revenue at risk
    (Σ churn probability * the member's spend in the last 90 days, `spend_last_90d`), and
    `trend`: for each of the last `days` UTC days (oldest first, today last), how many of
    today's members were at each risk level at the day's end and how many moved up a level
    during it (from the stored risk level changes, not sampled)."""
    return await service.stats(principal.tenant_id, cohort_id, days)


#: The customers' part of the dashboard, for the gateway's composed ``/v1/dashboard/*``
#: (internal: the gateway answers 404 for ``/v1/internal/*``). Viewers and above.
dashboard_router = APIRouter(
    prefix="/v1/internal/dashboard/customers", tags=["internal"], responses=PROBLEM_RESPONSES
)


@dashboard_router.get(
    "/summary", response_model=CustomersSummary, operation_id="internal_dashboard_customers"
)
async def dashboard_summary(
    principal: PrincipalDep, service: DashboardServiceDep
) -> CustomersSummary:
    """Customers per risk level, the score histogram (20 bins), customers that moved up a
    level in the last 7 days and revenue at risk (Σ churn probability * `spend_last_90d`)."""
    return await service.summary(principal.tenant_id)


@dashboard_router.get(
    "/trend", response_model=RiskTrend, operation_id="internal_dashboard_customers_trend"
)
async def dashboard_trend(
    principal: PrincipalDep,
    service: DashboardServiceDep,
    days: TrendDays = 90,
    last_day: Annotated[
        date | None, Query(description="The trend's last UTC day (default: today)")
    ] = None,
) -> RiskTrend:
    """Per UTC day: customers per risk level at its end and how many moved up a level."""
    return await service.trend(principal.tenant_id, days, last_day)


#: What prediction jobs over a filter read (internal: the gateway answers 404 for
#: ``/v1/internal/*``). Any role: the prediction service calls it as the job's submitter.
scoring_inputs_router = APIRouter(
    prefix="/v1/internal/scoring-inputs", tags=["internal"], responses=PROBLEM_RESPONSES
)


@scoring_inputs_router.post(
    "", response_model=ScoringInputsPage, operation_id="internal_scoring_inputs"
)
async def scoring_inputs(
    body: ScoringInputsIn, principal: PrincipalDep, service: CustomerServiceDep
) -> ScoringInputsPage:
    """A keyset page (by customer id, up to 1,000) of the customers matching `filter` (the
    filters of `GET /v1/customers`, as JSON; a bad one is a 422, an unknown `segment` a 404):
    each customer's feature profile (null without one) and imported attributes; `total` when
    `count_up_to` is given. A read: nothing changes."""
    return await service.scoring_inputs(principal.tenant_id, body)
