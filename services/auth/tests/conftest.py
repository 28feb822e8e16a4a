"""Fixtures of the auth service's tests: the app on a fresh database, served in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from churn_auth.config import Settings
from churn_auth.main import create_app

PASSWORD = "correct horse battery staple"


@pytest.fixture
def service_name() -> str:
    return "auth"


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "log_json": False,
            "log_level": "WARNING",
            # Tests log in often from one address; the throttle has tests of its own.
            "rate_limit_enabled": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], in_process: Callable[..., Any]
) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(create_app(make_settings())) as http:
        yield http


@pytest.fixture
def register(client: httpx.AsyncClient) -> Callable[..., Any]:
    """Register a tenant and its owner; returns the 201 body."""

    async def do(email: str = "owner@example.com", tenant_name: str = "Acme") -> dict[str, Any]:
        response = await client.post(
            "/v1/auth/register",
            json={"tenant_name": tenant_name, "email": email, "password": PASSWORD},
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return do


@pytest.fixture
def login(client: httpx.AsyncClient) -> Callable[..., Any]:
    """Log in; returns the token pair."""

    async def do(email: str = "owner@example.com", password: str = PASSWORD) -> dict[str, Any]:
        response = await client.post("/v1/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return do


class Tenant:
    """A registered tenant seen through its owner, with helpers to add and log in users."""

    def __init__(
        self, client: httpx.AsyncClient, registered: dict[str, Any], tokens: dict[str, Any]
    ):
        self.client = client
        self.id: str = registered["tenant_id"]
        self.owner_id: str = registered["user_id"]
        self.owner_email: str = registered["email"]
        self.owner_tokens = tokens

    @property
    def owner(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.owner_tokens['access_token']}"}

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def add_user(
        self, email: str, role: str, *, by: dict[str, str] | None = None
    ) -> tuple[str, dict[str, str]]:
        """Create a user (by the owner unless ``by``), log them in: (user id, auth headers)."""
        response = await self.client.post(
            "/v1/users",
            json={"email": email, "password": PASSWORD, "role": role},
            headers=by or self.owner,
        )
        assert response.status_code == 201, response.text
        tokens = await self.login(email)
        return response.json()["id"], {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def make_tenant(client: httpx.AsyncClient) -> Callable[..., Any]:
    async def make(name: str = "Acme", email: str | None = None) -> Tenant:
        email = email or f"owner@{name.lower()}.example.com"
        registered = await client.post(
            "/v1/auth/register", json={"tenant_name": name, "email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        tokens = await client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert tokens.status_code == 200, tokens.text
        return Tenant(client, registered.json(), tokens.json())

    return make
