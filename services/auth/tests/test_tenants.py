"""The internal tenant lookup the customers service asks before applying a Kafka event."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx

MakeTenant = Callable[..., Any]


async def test_a_registered_tenant_is_found(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant()

    found = await client.get(f"/v1/auth/tenants/{acme.id}")

    assert found.status_code == 200, found.text
    body = found.json()
    assert body["id"] == acme.id
    assert body["created_at"]
    assert set(body) == {"id", "created_at"}  # nothing else about the tenant leaks


async def test_an_unknown_tenant_is_404_problem(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/v1/auth/tenants/{uuid.uuid4()}")

    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["detail"] == "The tenant does not exist."


async def test_an_id_longer_than_any_tenant_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/auth/tenants/{'x' * 65}")

    assert response.status_code == 422
