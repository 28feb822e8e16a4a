"""FastAPI dependencies: one unit of work per request, settings, the principal, services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from churn_alerts.config import Settings
from churn_alerts.service import AlertService
from churn_shared.security import Principal, require_role
from churn_shared.unit_of_work import SessionDep


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_alert_service(session: SessionDep) -> AlertService:
    return AlertService(session)


SettingsDep = Annotated[Settings, Depends(get_settings)]
AlertServiceDep = Annotated[AlertService, Depends(get_alert_service)]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
