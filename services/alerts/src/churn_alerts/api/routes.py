"""Routes: parse, call one service method, return. Everything is scoped to the caller's tenant."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from churn_alerts.dashboard import MAX_TREND_DAYS
from churn_alerts.dependencies import (
    AdminDep,
    AlertServiceDep,
    AuthorizationDep,
    DashboardServiceDep,
    SenderDep,
    SettingsDep,
    WorkerDep,
)
from churn_alerts.lifecycle import AlertStatus
from churn_alerts.repository import AlertFilters
from churn_alerts.rules import AlertKind
from churn_alerts.schemas import (
    AlertAssign,
    AlertChannelCreate,
    AlertChannelCreated,
    AlertChannelList,
    AlertChannelRead,
    AlertDeliveries,
    AlertHistory,
    AlertIds,
    AlertOutcomeRead,
    AlertOutcomes,
    AlertPage,
    AlertRead,
    AlertResolve,
    AlertRulesRead,
    AlertRulesUpdate,
    AlertSnooze,
    AlertsSummary,
    AlertTrend,
    BulkAssign,
    BulkResolve,
    BulkResult,
    ChannelTestResult,
    DeliveryPage,
    DeliveryRead,
    DeliveryStatus,
    RiskLevel,
)
from churn_alerts.service import Change
from churn_shared.errors import PROBLEM_RESPONSES, problem_doc
from churn_shared.fields import Timestamp
from churn_shared.security import PrincipalDep

alerts_router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=PROBLEM_RESPONSES)
_TRANSITION_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: problem_doc("The alert's status does not allow this")
}
rules_router = APIRouter(
    prefix="/v1/alert-rules", tags=["alert-rules"], responses=PROBLEM_RESPONSES
)
channels_router = APIRouter(
    prefix="/v1/alert-channels", tags=["alert-channels"], responses=PROBLEM_RESPONSES
)
deliveries_router = APIRouter(
    prefix="/v1/deliveries", tags=["deliveries"], responses=PROBLEM_RESPONSES
)


@alerts_router.get("", operation_id="alerts_list", response_model=AlertPage)
async def list_alerts(
    principal: PrincipalDep,
    service: AlertServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    kind: AlertKind | None = None,
    status: AlertStatus | None = None,
    risk_level: RiskLevel | None = None,
    assignee: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=64,
            description="A user id, `me` (the caller) or `none` (nobody assigned).",
        ),
    ] = None,
    created_from: Annotated[Timestamp | None, Query(description="Inclusive.")] = None,
    created_to: Annotated[Timestamp | None, Query(description="Exclusive.")] = None,
) -> AlertPage:
    """The tenant's alerts, newest first, filtered."""
    filters = AlertFilters(
        customer_id=customer_id,
        kind=kind,
        status=status,
        risk_level=risk_level,
        assignee_id=principal.subject
        if assignee == "me"
        else None
        if assignee == "none"
        else assignee,
        unassigned=assignee == "none",
        created_from=created_from,
        created_to=created_to,
    )
    return await service.list_alerts(
        principal.tenant_id, limit=limit, cursor=cursor, filters=filters
    )


@alerts_router.get(
    "/outcomes",
    operation_id="alerts_outcomes",
    response_model=AlertOutcomes,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_outcomes(
    principal: PrincipalDep,
    service: AlertServiceDep,
    format: Literal["json", "csv"] = "json",
    resolved_from: Annotated[Timestamp | None, Query(description="Inclusive.")] = None,
    resolved_to: Annotated[Timestamp | None, Query(description="Exclusive.")] = None,
) -> AlertOutcomes | Response:
    """Resolved alerts and their outcome (retained, churned, false alarm): labels for model
    evaluation, as JSON or CSV."""
    outcomes = await service.outcomes(principal.tenant_id, resolved_from, resolved_to)
    if format == "json":
        return outcomes
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=list(AlertOutcomeRead.model_fields), lineterminator="\n"
    )
    writer.writeheader()
    for item in outcomes.items:
        writer.writerow(item.model_dump(mode="json"))
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8")


# Bulk routes come before ``/{alert_id}/...`` so ``bulk`` is never taken for an alert id.


@alerts_router.post("/bulk/acknowledge", operation_id="alerts_bulk_acknowledge")
async def bulk_acknowledge(
    body: AlertIds, principal: WorkerDep, service: AlertServiceDep
) -> BulkResult:
    """Acknowledge each listed alert; each is reported as ``ok``, ``not_found`` or ``conflict``."""
    return await service.change_many(
        principal.tenant_id, body.alert_ids, principal.subject, Change("acknowledge")
    )


@alerts_router.post("/bulk/assign", operation_id="alerts_bulk_assign")
async def bulk_assign(
    body: BulkAssign,
    principal: WorkerDep,
    service: AlertServiceDep,
    authorization: AuthorizationDep,
) -> BulkResult:
    return await service.assign_many(
        principal.tenant_id, body.alert_ids, principal.subject, body.user_id, authorization
    )


@alerts_router.post("/bulk/resolve", operation_id="alerts_bulk_resolve")
async def bulk_resolve(
    body: BulkResolve, principal: WorkerDep, service: AlertServiceDep
) -> BulkResult:
    return await service.change_many(
        principal.tenant_id,
        body.alert_ids,
        principal.subject,
        Change("resolve", outcome=body.outcome, note=body.note or None),
    )


@alerts_router.get("/{alert_id}", operation_id="alerts_get", response_model=AlertRead)
async def get_alert(alert_id: str, principal: PrincipalDep, service: AlertServiceDep) -> AlertRead:
    return await service.get_alert(principal.tenant_id, alert_id)


@alerts_router.get("/{alert_id}/history", operation_id="alerts_history")
async def alert_history(
    alert_id: str, principal: PrincipalDep, service: AlertServiceDep
) -> AlertHistory:
    """Who did what to the alert and when, oldest first (append-only)."""
    return await service.history_of(principal.tenant_id, alert_id)


@alerts_router.get("/{alert_id}/deliveries", operation_id="alerts_deliveries")
async def alert_deliveries(
    alert_id: str, principal: PrincipalDep, service: AlertServiceDep
) -> AlertDeliveries:
    """The alert's delivery to each channel, with every attempt's answer, error and time."""
    return await service.deliveries_of(principal.tenant_id, alert_id)


@alerts_router.post(
    "/{alert_id}/acknowledge", operation_id="alerts_acknowledge", responses=_TRANSITION_CONFLICT
)
async def acknowledge(alert_id: str, principal: WorkerDep, service: AlertServiceDep) -> AlertRead:
    """``open`` or ``snoozed`` → ``acknowledged``; 409 from any other state."""
    return await service.change(
        principal.tenant_id, alert_id, principal.subject, Change("acknowledge")
    )


@alerts_router.post(
    "/{alert_id}/assign", operation_id="alerts_assign", responses=_TRANSITION_CONFLICT
)
async def assign(
    alert_id: str,
    body: AlertAssign,
    principal: WorkerDep,
    service: AlertServiceDep,
    authorization: AuthorizationDep,
) -> AlertRead:
    """Assign the alert to a user of the tenant (``"me"``: the caller; ``null``: nobody).
    Anyone who works alerts can take one; assigning it to someone else needs an admin (the
    auth service is asked whether that user exists; 503 when it cannot answer)."""
    return await service.assign(
        principal.tenant_id, alert_id, principal.subject, body.user_id, authorization
    )


@alerts_router.post(
    "/{alert_id}/snooze", operation_id="alerts_snooze", responses=_TRANSITION_CONFLICT
)
async def snooze(
    alert_id: str, body: AlertSnooze, principal: WorkerDep, service: AlertServiceDep
) -> AlertRead:
    """Hide the alert until ``until``; it then comes back as ``open``."""
    return await service.change(
        principal.tenant_id, alert_id, principal.subject, Change("snooze", until=body.until)
    )


@alerts_router.post(
    "/{alert_id}/resolve", operation_id="alerts_resolve", responses=_TRANSITION_CONFLICT
)
async def resolve(
    alert_id: str, body: AlertResolve, principal: WorkerDep, service: AlertServiceDep
) -> AlertRead:
    """Close the alert with its outcome (``retained``, ``churned``, ``false_alarm``)."""
    return await service.change(
        principal.tenant_id,
        alert_id,
        principal.subject,
        Change("resolve", outcome=body.outcome, note=body.note or None),
    )


@alerts_router.post(
    "/{alert_id}/reopen", operation_id="alerts_reopen", responses=_TRANSITION_CONFLICT
)
async def reopen(alert_id: str, principal: WorkerDep, service: AlertServiceDep) -> AlertRead:
    """Back to ``open`` (clears the outcome and any snooze)."""
    return await service.change(principal.tenant_id, alert_id, principal.subject, Change("reopen"))


@rules_router.get("", operation_id="alert_rules_get", response_model=AlertRulesRead)
async def get_rules(principal: PrincipalDep, service: AlertServiceDep) -> AlertRulesRead:
    """The tenant's rules (the defaults until it stores its own)."""
    return await service.get_rules(principal.tenant_id)


@rules_router.put("", operation_id="alert_rules_update", response_model=AlertRulesRead)
async def update_rules(
    body: AlertRulesUpdate, principal: AdminDep, service: AlertServiceDep
) -> AlertRulesRead:
    return await service.update_rules(principal.tenant_id, body)


@channels_router.post(
    "",
    operation_id="alert_channels_create",
    response_model=AlertChannelCreated,
    status_code=status.HTTP_201_CREATED,
)
async def create_channel(
    body: AlertChannelCreate, principal: AdminDep, service: AlertServiceDep, settings: SettingsDep
) -> AlertChannelCreated:
    """Add a channel (webhook, Slack, Discord or e-mail) in ``immediate`` or a digest mode; the
    response carries its signing secret, which is never shown again."""
    return await service.create_channel(
        principal.tenant_id,
        body,
        allow_internal_urls=settings.dev_mode,
        email_enabled=settings.smtp_host is not None,
    )


@channels_router.get("", operation_id="alert_channels_list", response_model=AlertChannelList)
async def list_channels(principal: PrincipalDep, service: AlertServiceDep) -> AlertChannelList:
    return await service.list_channels(principal.tenant_id)


@channels_router.delete(
    "/{channel_id}", operation_id="alert_channels_delete", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_channel(
    channel_id: str, principal: AdminDep, service: AlertServiceDep
) -> Response:
    await service.delete_channel(principal.tenant_id, channel_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@channels_router.post(
    "/{channel_id}/test", operation_id="alert_channels_test", response_model=ChannelTestResult
)
async def test_channel(
    channel_id: str, principal: AdminDep, service: AlertServiceDep, sender: SenderDep
) -> ChannelTestResult:
    """Send an example alert, signed, to the channel now and report the receiver's answer."""
    return await service.test_channel(principal.tenant_id, channel_id, sender)


@channels_router.post(
    "/{channel_id}/enable", operation_id="alert_channels_enable", response_model=AlertChannelRead
)
async def enable_channel(
    channel_id: str, principal: AdminDep, service: AlertServiceDep
) -> AlertChannelRead:
    """Deliver to a channel that was disabled after repeated dead deliveries again."""
    return await service.enable_channel(principal.tenant_id, channel_id)


@deliveries_router.get("", operation_id="deliveries_list", response_model=DeliveryPage)
async def list_deliveries(
    principal: PrincipalDep,
    service: AlertServiceDep,
    status: DeliveryStatus | None = None,
    channel_id: Annotated[str | None, Query(min_length=1, max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DeliveryPage:
    """The tenant's deliveries, newest first; ``status=dead`` lists the dead letters."""
    return await service.list_deliveries(
        principal.tenant_id, limit=limit, cursor=cursor, status=status, channel_id=channel_id
    )


@deliveries_router.post(
    "/{delivery_id}/retry",
    operation_id="deliveries_retry",
    response_model=DeliveryRead,
    responses={409: problem_doc("Pending or delivered, or its channel is disabled or deleted")},
)
async def retry_delivery(
    delivery_id: str, principal: AdminDep, service: AlertServiceDep
) -> DeliveryRead:
    """Replay a dead delivery (same ``webhook-id``); 409 while it is pending or delivered, or
    when its channel is disabled or deleted."""
    return await service.retry_delivery(principal.tenant_id, delivery_id)


#: The alerts' part of the dashboard, for the gateway's composed ``/v1/dashboard/*``
#: (internal: the gateway answers 404 for ``/v1/internal/*``). Viewers and above.
dashboard_router = APIRouter(
    prefix="/v1/internal/dashboard/alerts", tags=["internal"], responses=PROBLEM_RESPONSES
)


@dashboard_router.get(
    "/summary", response_model=AlertsSummary, operation_id="internal_dashboard_alerts"
)
async def dashboard_summary(principal: PrincipalDep, service: DashboardServiceDep) -> AlertsSummary:
    """The tenant's alerts per status now."""
    return await service.summary(principal.tenant_id)


@dashboard_router.get(
    "/trend", response_model=AlertTrend, operation_id="internal_dashboard_alerts_trend"
)
async def dashboard_trend(
    principal: PrincipalDep,
    service: DashboardServiceDep,
    days: Annotated[int, Query(ge=1, le=MAX_TREND_DAYS)] = 90,
    last_day: Annotated[
        date | None, Query(description="The trend's last UTC day (default: today)")
    ] = None,
) -> AlertTrend:
    """Per UTC day: the tenant's alerts per status at its end (from the alerts' histories)."""
    return await service.trend(principal.tenant_id, days, last_day)
