"""Routes: parse, call one service method, return. Everything is scoped to the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from churn_alerts.dependencies import AdminDep, AlertServiceDep, SettingsDep
from churn_alerts.rules import AlertKind
from churn_alerts.schemas import (
    AlertChannelCreate,
    AlertChannelCreated,
    AlertChannelList,
    AlertPage,
    AlertRead,
    AlertRulesRead,
    AlertRulesUpdate,
)
from churn_shared.errors import PROBLEM_RESPONSES
from churn_shared.security import PrincipalDep

alerts_router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=PROBLEM_RESPONSES)
rules_router = APIRouter(
    prefix="/v1/alert-rules", tags=["alert-rules"], responses=PROBLEM_RESPONSES
)
channels_router = APIRouter(
    prefix="/v1/alert-channels", tags=["alert-channels"], responses=PROBLEM_RESPONSES
)


@alerts_router.get("", operation_id="alerts_list", response_model=AlertPage)
async def list_alerts(
    principal: PrincipalDep,
    service: AlertServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
    kind: AlertKind | None = None,
) -> AlertPage:
    """The tenant's alerts, newest first."""
    return await service.list_alerts(
        principal.tenant_id, limit=limit, cursor=cursor, customer_id=customer_id, kind=kind
    )


@alerts_router.get("/{alert_id}", operation_id="alerts_get", response_model=AlertRead)
async def get_alert(alert_id: str, principal: PrincipalDep, service: AlertServiceDep) -> AlertRead:
    return await service.get_alert(principal.tenant_id, alert_id)


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
    """Add a webhook; the response carries its signing secret, which is never shown again."""
    return await service.create_channel(
        principal.tenant_id, body, allow_internal_urls=settings.dev_mode
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
