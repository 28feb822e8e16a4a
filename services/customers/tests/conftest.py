"""Fixtures of the customers service's tests: settings on a fresh database and the
module's real broker, a token per tenant, and a running app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Collection
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.config import Settings
from churn_customers.main import create_app
from churn_customers.tenants import TenantDirectoryUnavailableError
from churn_shared.db import create_engine, create_session_factory

SESSION_GROUP = f"customers-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def service_name() -> str:
    return "customers"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test's database (already at the head migration), for tests that drive
    services and workers without an app."""
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
def make_settings(
    database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "kafka_bootstrap_servers": kafka_bootstrap,
            # One group for the run, as replicas of one service share one: each test's app
            # resumes where the previous one committed instead of replaying every event the
            # module's broker holds (from other tests' tenants) into its fresh database.
            "consumer_group": SESSION_GROUP,
            "log_json": False,
            "kafka_linger_ms": 0,
            # Uploaded customer files wait here; a poll interval short enough for tests.
            "imports_dir": tmp_path / "customer-imports",
            "import_poll_seconds": 0.2,
            # Tests store scores at fixed dates; the pruner is driven explicitly where tested
            # (test_score_history_pruning.py), not left to age them out as the calendar moves.
            "score_history_prune_interval_seconds": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


class KnownTenants:
    """Stands in for the auth service's tenant lookups (``churn_customers.tenants``): the
    tenants in ``ids`` exist; while ``down``, it cannot tell (as when auth is unreachable)."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.down = False
        self.lookups = 0

    async def unknown(self, tenant_ids: Collection[str]) -> set[str]:
        self.lookups += 1
        if self.down:
            raise TenantDirectoryUnavailableError("auth is unreachable (test)")
        return set(tenant_ids) - self.ids


#: The tenants the ``tenant`` fixtures made: every app of these tests knows them.
KNOWN_TENANTS = KnownTenants()


def _tenant(token_signer: Any, role: str = "owner") -> dict[str, Any]:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    KNOWN_TENANTS.ids.add(tenant_id)
    token = token_signer.issue(tenant_id, role=role)
    return {"id": tenant_id, "headers": {"Authorization": f"Bearer {token}"}}


@pytest.fixture
def known_tenants() -> KnownTenants:
    """The tenant directory every app of these tests is given (add an id to make it real)."""
    return KNOWN_TENANTS


@pytest.fixture
def tenant(token_signer: Any) -> dict[str, Any]:
    return _tenant(token_signer)


@pytest.fixture
def other_tenant(token_signer: Any) -> dict[str, Any]:
    return _tenant(token_signer)


@pytest.fixture
def app(make_settings: Callable[..., Settings], token_signer: Any) -> FastAPI:
    return create_app(
        make_settings(), token_verifier=token_signer.verifier(), tenant_directory=KNOWN_TENANTS
    )


@pytest.fixture
async def client(app: FastAPI, in_process: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(app) as http:
        yield http
