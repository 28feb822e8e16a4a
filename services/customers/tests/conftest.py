"""Fixtures of the customers service's tests: settings on a fresh database and the session's
real broker, a token per tenant, and a running app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from churn_customers.config import Settings
from churn_customers.main import create_app

SESSION_GROUP = f"customers-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def service_name() -> str:
    return "customers"


@pytest.fixture
def make_settings(database_url: str, kafka_bootstrap: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "kafka_bootstrap_servers": kafka_bootstrap,
            # One group for the session, as replicas of one service share one: each test's app
            # resumes where the previous one committed instead of replaying every event the
            # session produced (from other tests' tenants) into its fresh database.
            "consumer_group": SESSION_GROUP,
            "log_json": False,
            "kafka_linger_ms": 0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


def _tenant(token_signer: Any, role: str = "owner") -> dict[str, Any]:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    token = token_signer.issue(tenant_id, role=role)
    return {"id": tenant_id, "headers": {"Authorization": f"Bearer {token}"}}


@pytest.fixture
def tenant(token_signer: Any) -> dict[str, Any]:
    return _tenant(token_signer)


@pytest.fixture
def other_tenant(token_signer: Any) -> dict[str, Any]:
    return _tenant(token_signer)


@pytest.fixture
def app(make_settings: Callable[..., Settings], token_signer: Any) -> FastAPI:
    return create_app(make_settings(), token_verifier=token_signer.verifier())


@pytest.fixture
async def client(app: FastAPI, in_process: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(app) as http:
        yield http
