"""FastAPI dependencies: one unit of work per request, settings and the services."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from churn_customers.config import Settings
from churn_customers.service import (
    CustomerService,
    EventIngestService,
    ImportService,
    TrainingSetService,
)
from churn_shared.unit_of_work import SessionDep


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_customer_service(session: SessionDep) -> CustomerService:
    return CustomerService(session)


def get_ingest_service(session: SessionDep, settings: SettingsDep) -> EventIngestService:
    return EventIngestService(session, max_batch=settings.max_events_per_batch)


CustomerServiceDep = Annotated[CustomerService, Depends(get_customer_service)]
EventIngestServiceDep = Annotated[EventIngestService, Depends(get_ingest_service)]


def get_import_service(
    request: Request, session: SessionDep, settings: SettingsDep
) -> ImportService:
    return ImportService(
        session,
        session_factory=request.app.state.session_factory,
        max_bytes=settings.max_import_bytes,
    )


def get_training_set_service(session: SessionDep) -> TrainingSetService:
    return TrainingSetService(session)


ImportServiceDep = Annotated[ImportService, Depends(get_import_service)]
TrainingSetServiceDep = Annotated[TrainingSetService, Depends(get_training_set_service)]
