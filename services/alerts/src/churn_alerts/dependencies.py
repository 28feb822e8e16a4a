"""FastAPI dependencies: one unit of work per request, settings, the principal, services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from churn_alerts.config import Settings
from churn_alerts.dashboard import DashboardService
from churn_alerts.sending import MessageSender
from churn_alerts.service import AlertService
from churn_alerts.users import UserDirectory
from churn_shared.errors import ForbiddenError
from churn_shared.runtime import ProcessState
from churn_shared.security import Principal, require_role
from churn_shared.unit_of_work import SessionDep


class AlertsState(ProcessState):
    """``app.state`` of the alerts service."""

    settings: Settings
    #: Who may be assigned an alert (the auth service's users API).
    users: UserDirectory
    #: Sends channel tests (the same pinned, signed sending as the delivery worker).
    sender: MessageSender


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_alert_service(request: Request, session: SessionDep) -> AlertService:
    state: AlertsState = request.app.state
    return AlertService(session, users=getattr(state, "users", None))


_analyst = require_role("analyst")


async def require_alert_worker(principal: Principal = Depends(_analyst)) -> Principal:
    """Analysts and above work alerts, as themselves: an API key cannot (it is nobody to
    assign or to record in an alert's history)."""
    if principal.is_api_key:
        raise ForbiddenError("Alerts are worked by users, not by API keys.")
    return principal


def get_dashboard_service(session: SessionDep) -> DashboardService:
    return DashboardService(session)


def get_sender(request: Request) -> MessageSender:
    sender: MessageSender = request.app.state.sender
    return sender


def get_authorization(request: Request) -> str:
    """The caller's ``Authorization`` header, to ask the auth service on the caller's behalf."""
    return request.headers.get("authorization", "")


SettingsDep = Annotated[Settings, Depends(get_settings)]
AlertServiceDep = Annotated[AlertService, Depends(get_alert_service)]
DashboardServiceDep = Annotated[DashboardService, Depends(get_dashboard_service)]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
WorkerDep = Annotated[Principal, Depends(require_alert_worker)]
AuthorizationDep = Annotated[str, Depends(get_authorization)]
SenderDep = Annotated[MessageSender, Depends(get_sender)]
