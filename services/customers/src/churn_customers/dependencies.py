"""FastAPI dependencies: one unit of work per request, settings and the services."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from churn_customers.bulk import BulkService
from churn_customers.cohorts import CohortService
from churn_customers.config import Settings
from churn_customers.dashboard import DashboardService
from churn_customers.exporting import ExportService
from churn_customers.importing import ZipLimits
from churn_customers.imports import ImportLimits, ImportRunner, ImportService
from churn_customers.retention import RetentionService
from churn_customers.service import (
    CustomerService,
    EventIngestService,
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


def get_import_service(session: SessionDep, settings: SettingsDep) -> ImportService:
    """The import service with every import limit of the settings (bytes, rows, imports in
    flight per tenant, cells, XLSX zip directory)."""
    return ImportService(
        session,
        imports_dir=settings.imports_dir,
        limits=ImportLimits(
            max_bytes=settings.max_import_bytes,
            max_rows=settings.max_import_rows,
            max_concurrent=settings.max_concurrent_imports,
            stale_after=timedelta(seconds=settings.stale_import_after_seconds),
            max_cell_chars=settings.max_import_cell_chars,
            max_error_rows=settings.max_import_error_rows,
            zip=ZipLimits(
                max_total_bytes=settings.max_import_xlsx_uncompressed_bytes,
                max_ratio=settings.max_import_xlsx_ratio,
            ),
        ),
    )


def get_import_runner(request: Request) -> ImportRunner:
    """The API process's import runner (started with the app)."""
    runner: ImportRunner = request.app.state.import_runner
    return runner


def get_training_set_service(session: SessionDep) -> TrainingSetService:
    return TrainingSetService(session)


def get_export_service(request: Request) -> ExportService:
    """The export reads in its own short transactions while the response streams."""
    return ExportService(request.app.state.session_factory)


ImportServiceDep = Annotated[ImportService, Depends(get_import_service)]
ImportRunnerDep = Annotated[ImportRunner, Depends(get_import_runner)]
ExportServiceDep = Annotated[ExportService, Depends(get_export_service)]


def get_bulk_service(session: SessionDep) -> BulkService:
    return BulkService(session)


BulkServiceDep = Annotated[BulkService, Depends(get_bulk_service)]


def get_cohort_service(session: SessionDep) -> CohortService:
    return CohortService(session)


CohortServiceDep = Annotated[CohortService, Depends(get_cohort_service)]


def get_retention_service(session: SessionDep) -> RetentionService:
    return RetentionService(session)


RetentionServiceDep = Annotated[RetentionService, Depends(get_retention_service)]


def get_dashboard_service(session: SessionDep) -> DashboardService:
    return DashboardService(session)


DashboardServiceDep = Annotated[DashboardService, Depends(get_dashboard_service)]
TrainingSetServiceDep = Annotated[TrainingSetService, Depends(get_training_set_service)]
