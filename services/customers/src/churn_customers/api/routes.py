"""HTTP routes: parse, call one service method, return."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError

from churn_customers.dependencies import (
    BulkServiceDep,
    CohortServiceDep,
    CustomerServiceDep,
    EventIngestServiceDep,
    ExportServiceDep,
    ImportServiceDep,
    TrainingSetServiceDep,
)
from churn_customers.exporting import ExportFormat
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
    CustomerTrainingSet,
    CustomerUpdate,
    EventBatchAccepted,
    EventBatchIn,
    EventTrainingSet,
    ImportAccepted,
    ImportRead,
    RiskLevel,
    ScoreHistoryPage,
)
from churn_customers.service import parse_cutoff
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
                            "description": "CSV with a header row (XLSX is refused with 415)",
                        },
                        "id_column": {
                            "type": "string",
                            "default": "customer_id",
                            "description": "The column holding each customer's id",
                        },
                    },
                }
            }
        },
    }
}


@imports_router.post(
    "/import",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportAccepted,
    operation_id="customers_import",
    openapi_extra=_IMPORT_BODY,
    responses={
        415: {**PROBLEM_RESPONSES[422], "description": "A spreadsheet, not CSV"},
        429: {**PROBLEM_RESPONSES[422], "description": "Too many imports of this tenant in flight"},
    },
)
async def import_customers(
    request: Request,
    background: BackgroundTasks,
    principal: WriterDep,
    service: ImportServiceDep,
) -> ImportAccepted:
    """Upload a customer file; its rows are upserted in the background (poll the import).

    Cells are typed (numbers as numbers, blanks as null) and merged into each customer's
    attributes; rows with errors are skipped whole and reported with their line numbers.
    A file over the byte or row limit is refused with 413, text that is neither UTF-8 nor
    Windows-1252 with 422, and an upload while the tenant has its maximum of imports queued or
    running with 429 (``Retry-After``); a refused file leaves nothing stored."""
    return await service.start_import(
        principal.tenant_id,
        principal.subject,
        request.headers.get("content-type", ""),
        request.stream(),
        background.add_task,
    )


@imports_router.get(
    "/imports/{import_id}", response_model=ImportRead, operation_id="customers_import_get"
)
async def get_import(
    import_id: str, principal: PrincipalDep, service: ImportServiceDep
) -> ImportRead:
    return await service.get_import(principal.tenant_id, import_id)


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
    horizon_days: Annotated[int, Query(description="30, 60, 90 or 180")],
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


@cohorts_router.get("/{cohort_id}/stats", response_model=CohortStats, operation_id="cohorts_stats")
async def cohort_stats(
    cohort_id: str, principal: PrincipalDep, service: CohortServiceDep
) -> CohortStats:
    """The cohort's members now: size, risk mix, mean churn probability and revenue at risk
    (Σ churn probability * the member's spend in the last 90 days, `spend_last_90d`)."""
    return await service.stats(principal.tenant_id, cohort_id)
