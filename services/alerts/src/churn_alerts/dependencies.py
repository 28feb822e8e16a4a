"""FastAPI dependencies: one unit of work per request, settings, the principal, services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.config import Settings
from churn_alerts.service import AlertService
from churn_shared.db import unit_of_work
from churn_shared.security import Principal, require_role


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """Commit when the request succeeds, roll back when it fails, then wake the outbox relay."""
    async with unit_of_work(request.app.state.session_factory) as session:
        yield session
    relay = getattr(request.app.state, "outbox_relay", None)
    if relay is not None:
        relay.notify()


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_alert_service(
    session: Annotated[AsyncSession, Depends(get_session)],
) -> AlertService:
    return AlertService(session)


SessionDep = Annotated[AsyncSession, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
AlertServiceDep = Annotated[AlertService, Depends(get_alert_service)]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]
