"""The customers service's process. ``uvicorn --factory churn_customers.main:app_from_env``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from churn_customers.api.routes import (
    cohorts_router,
    customers_router,
    dashboard_router,
    events_router,
    imports_router,
    scoring_inputs_router,
    training_sets_router,
    workspace_router,
)
from churn_customers.config import Settings
from churn_customers.imports import ImportRunner, runner_settings
from churn_customers.tenants import TenantDirectory
from churn_customers.worker import RUNTIME
from churn_shared.middleware import STREAMED_BODIES
from churn_shared.runtime import ProcessState
from churn_shared.security import TokenVerifier


def create_app(
    settings: Settings | None = None,
    *,
    token_verifier: TokenVerifier | None = None,
    tenant_directory: TenantDirectory | None = None,
) -> FastAPI:
    """``tenant_directory`` replaces the auth service's tenant lookups (tests)."""
    settings = settings or Settings()
    state = ProcessState(settings)
    if tenant_directory is not None:
        state.tenants = tenant_directory
    app = RUNTIME.create_app(
        state,
        title="churn customers",
        description="Customers, raw events and live feature profiles.",
        # Before the customers router: /v1/customers/imports/... and /v1/customers/export must
        # not match /{customer_id}.
        routers=(
            events_router,
            imports_router,
            workspace_router,
            customers_router,
            training_sets_router,
            cohorts_router,
            dashboard_router,
            scoring_inputs_router,
        ),
        token_verifier=token_verifier,
        # Customer files may be larger than other bodies; the import route enforces its own limit.
        max_body_bytes=max(settings.max_body_bytes, settings.max_import_bytes + 64 * 1024),
    )
    # The upload streams to the import service as it arrives (not buffered by the body-size
    # and retry middlewares), counted against its own limit.
    setattr(
        app.state, STREAMED_BODIES, {"/v1/customers/import": settings.max_import_bytes + 64 * 1024}
    )
    _run_imports(app, settings)
    return app


def _run_imports(app: FastAPI, settings: Settings) -> None:
    """Run customer imports in the API process, inside its lifespan (after the database is
    open): the process that receives a file can always read it from the imports directory,
    whatever volume other processes have (``python -m churn_customers.worker`` runs none)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            state = app.state

            def wake_relay() -> None:
                relay = getattr(state, "outbox_relay", None)
                if relay is not None:
                    relay.notify()

            runner = ImportRunner(runner_settings(settings), state.session_factory, wake_relay)
            state.import_runner = runner
            runner.start()
            try:
                yield
            finally:
                await runner.stop()

    app.router.lifespan_context = lifespan


def app_from_env() -> FastAPI:
    return create_app(Settings())
