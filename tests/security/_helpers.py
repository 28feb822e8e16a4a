"""Accounts, tenants and resources for the security suite (everything through the gateway)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import socketio

from churn_cli.simulator import at_risk_story

PASSWORD = "correct horse battery staple 42"
ROLES = ("viewer", "analyst", "admin", "owner")


@dataclass
class Account:
    email: str
    password: str
    user_id: str
    tenant_id: str
    role: str
    access_token: str
    refresh_token: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def kid(self) -> str:
        return str(jwt.get_unverified_header(self.access_token)["kid"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def register(client: httpx.AsyncClient, name: str) -> Account:
    email = f"{unique(name)}@example.com"
    response = await client.post(
        "/v1/auth/register", json={"tenant_name": name, "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    tokens = await login(client, email)
    return Account(
        email=email,
        password=PASSWORD,
        user_id=body["user_id"],
        tenant_id=body["tenant_id"],
        role="owner",
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


async def add_user(client: httpx.AsyncClient, owner: Account, role: str) -> Account:
    """A new user of ``owner``'s tenant with ``role``, logged in."""
    email = f"{unique(role)}@example.com"
    response = await client.post(
        "/v1/users",
        headers=owner.headers,
        json={"email": email, "password": PASSWORD, "role": role},
    )
    assert response.status_code == 201, response.text
    tokens = await login(client, email)
    return Account(
        email=email,
        password=PASSWORD,
        user_id=response.json()["id"],
        tenant_id=owner.tenant_id,
        role=role,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
    )


async def create_api_key(
    client: httpx.AsyncClient, owner: Account, scopes: list[str], name: str = "integration"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/api-keys", headers=owner.headers, json={"name": name, "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["key"].startswith("ck_")
    return body


async def ingest(client: httpx.AsyncClient, account: Account, events: list[dict[str, Any]]) -> None:
    response = await client.post("/v1/events", headers=account.headers, json={"events": events})
    assert response.status_code == 202, response.text


def login_event(customer_id: str) -> dict[str, Any]:
    return {
        "event_id": unique("ev"),
        "customer_id": customer_id,
        "type": "login",
        "occurred_at": "2026-01-01T00:00:00Z",
        "properties": {},
    }


async def create_customer(client: httpx.AsyncClient, account: Account) -> str:
    """A customer known through an event (so it has features too)."""
    customer_id = unique("cust")
    await ingest(client, account, [login_event(customer_id)])
    return customer_id


async def create_channel(client: httpx.AsyncClient, account: Account) -> str:
    response = await client.post(
        "/v1/alert-channels",
        headers=account.headers,
        json={"kind": "webhook", "url": "http://127.0.0.1:9/hooks/never"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def raise_alert(client: httpx.AsyncClient, account: Account) -> dict[str, Any]:
    """Post an at-risk customer's story and wait until its alert is listed."""
    customer_id = unique("risky")
    await ingest(client, account, at_risk_story(customer_id))
    deadline = asyncio.get_running_loop().time() + 90
    while True:
        response = await client.get(
            "/v1/alerts", headers=account.headers, params={"customer_id": customer_id}
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if items:
            alert: dict[str, Any] = items[0]
            return alert
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"no alert for {customer_id}")
        await asyncio.sleep(0.3)


class LiveFeed:
    """A Socket.IO client that records every live-feed message it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []

        @self.client.on("*")
        async def any_event(event: str, data: Any) -> None:
            self.received.append((event, data))

    async def connect(self, gateway_url: str, token: str) -> None:
        await self.client.connect(
            gateway_url,
            auth={"token": token},
            transports=["websocket"],
            socketio_path="/socket.io",
            wait_timeout=10,
        )

    async def close(self) -> None:
        await self.client.disconnect()
