"""Integrators' API keys against the real stack: scopes at the gateway, roles in the services,
revocation within the cache bound, the prediction service called directly with a key, and the
internal verification endpoint hidden from the outside."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import socketio

from testkit import wait_for
from tests.security._helpers import (
    LiveFeed,
    create_api_key,
    create_customer,
    login_event,
    register,
    unique,
)

pytestmark = pytest.mark.e2e

#: The stack runs the gateway's and prediction's key caches at 2 s (conftest.BASE_ENV).
CACHE_SECONDS = 2.0


@pytest.fixture(scope="module")
async def tenant(stack: Any) -> AsyncIterator[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        owner = await register(client, "integrator")
        keys = {
            name: await create_api_key(client, owner, scopes, name=name)
            for name, scopes in {
                "events": ["events:write"],
                "predictions": ["predictions"],
                "read": ["read"],
                "all": ["events:write", "predictions", "read"],
            }.items()
        }
        customer_id = await create_customer(client, owner)
        yield {"client": client, "owner": owner, "keys": keys, "customer_id": customer_id}


def _key(tenant: dict[str, Any], name: str) -> str:
    return str(tenant["keys"][name]["key"])


@pytest.mark.parametrize("style", ["x-api-key", "bearer"])
async def test_events_key_posts_events_through_the_gateway(tenant, style):
    key = _key(tenant, "events")
    headers = {"X-API-Key": key} if style == "x-api-key" else {"Authorization": f"Bearer {key}"}
    customer_id = unique("via-key")
    response = await tenant["client"].post(
        "/v1/events", headers=headers, json={"events": [login_event(customer_id)]}
    )
    assert response.status_code == 202, response.text
    seen = await tenant["client"].get(
        f"/v1/customers/{customer_id}", headers=tenant["owner"].headers
    )
    assert seen.status_code == 200


@pytest.mark.parametrize(
    ("key_name", "method", "path", "body", "expected"),
    [
        ("events", "GET", "/v1/alert-channels", None, 403),
        ("events", "GET", "/v1/customers", None, 403),
        ("events", "POST", "/v1/predictions", {"features": {}}, 403),
        ("events", "POST", "/v1/customers", {"customer_id": "x"}, 403),
        ("predictions", "POST", "/v1/predictions", {"features": {}}, 200),
        ("predictions", "POST", "/v1/predictions/batch", {"rows": [{}]}, 200),
        ("predictions", "POST", "/v1/predictions", {"customer_id": "{customer_id}"}, 200),
        ("predictions", "GET", "/v1/models/current", None, 403),
        ("predictions", "POST", "/v1/events", {"events": []}, 403),
        ("read", "GET", "/v1/customers", None, 200),
        ("read", "GET", "/v1/customers/{customer_id}", None, 200),
        ("read", "GET", "/v1/alert-channels", None, 200),
        ("read", "GET", "/v1/models/current", None, 200),
        ("read", "POST", "/v1/events", {"events": []}, 403),
        ("read", "DELETE", "/v1/customers/{customer_id}", None, 403),
        ("read", "PUT", "/v1/alert-rules", {}, 403),
        ("all", "POST", "/v1/api-keys", {"name": "escalate", "scopes": ["read"]}, 403),
        (
            "all",
            "POST",
            "/v1/users",
            {"email": "x@example.com", "password": "x", "role": "owner"},
            403,
        ),
        ("all", "PATCH", "/v1/customers/{customer_id}", {"attributes": {"a": 1}}, 403),
        ("all", "POST", "/v1/auth/keys/rotate", None, 403),
    ],
)
async def test_scopes_through_the_gateway(tenant, key_name, method, path, body, expected):
    path = path.format(customer_id=tenant["customer_id"])
    if isinstance(body, dict) and body.get("customer_id") == "{customer_id}":
        body = {"customer_id": tenant["customer_id"]}
    response = await tenant["client"].request(
        method, path, headers={"X-API-Key": _key(tenant, key_name)}, json=body
    )
    assert response.status_code == expected, response.text
    if expected == 403:
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_read_key_cannot_manage_keys_or_users(tenant):
    """``read`` lets a key GET, but key tokens carry a low role: listing users and keys (admin)
    is still refused by the auth service."""
    headers = {"X-API-Key": _key(tenant, "read")}
    for path in ("/v1/users", "/v1/api-keys"):
        response = await tenant["client"].get(path, headers=headers)
        assert response.status_code in (401, 403), (path, response.text)


@pytest.mark.parametrize("key", ["ck_not-a-real-key", "ck_", "ck_" + "x" * 300, "not-a-key"])
async def test_unknown_keys_are_401(tenant, key):
    response = await tenant["client"].get("/v1/customers", headers={"X-API-Key": key})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "path", ["/v1/auth/api-keys/verify", "/v1/auth/api-keys/verify/", "/v1/auth/api-keys%2Fverify"]
)
async def test_verify_endpoint_is_internal(stack, tenant, path):
    key = _key(tenant, "all")
    for headers in ({}, tenant["owner"].headers, {"X-API-Key": key}):
        response = await tenant["client"].post(path, headers=headers, json={"key": key})
        assert response.status_code == 404, response.text
        assert "access_token" not in response.text
    # The auth service itself answers (services reach it on the internal network).
    async with httpx.AsyncClient(base_url=stack.url("auth"), timeout=10) as direct:
        inside = await direct.post("/v1/auth/api-keys/verify", json={"key": key})
    assert inside.status_code == 200, inside.text
    assert set(inside.json()["scopes"]) == {"events:write", "predictions", "read"}


@pytest.mark.parametrize("style", ["x-api-key", "bearer"])
async def test_prediction_service_accepts_a_key_directly(stack, tenant, style):
    key = _key(tenant, "predictions")
    headers = {"X-API-Key": key} if style == "x-api-key" else {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=stack.url("prediction"), timeout=30) as direct:
        by_features = await direct.post("/v1/predictions", headers=headers, json={"features": {}})
        assert by_features.status_code == 200, by_features.text
        # By id: prediction fetches the features from customers as the key (its access token).
        by_id = await direct.post(
            "/v1/predictions", headers=headers, json={"customer_id": tenant["customer_id"]}
        )
        assert by_id.status_code == 200, by_id.text
        assert by_id.json()["customer_id"] == tenant["customer_id"]
        batch = await direct.post("/v1/predictions/batch", headers=headers, json={"rows": [{}]})
        assert batch.status_code == 200, batch.text
        # Scopes hold here too: reading models needs ``read``.
        models = await direct.get("/v1/models/current", headers=headers)
        assert models.status_code == 403, models.text
        read_models = await direct.get(
            "/v1/models/current", headers={"X-API-Key": _key(tenant, "read")}
        )
        assert read_models.status_code == 200, read_models.text
        events_key = await direct.post(
            "/v1/predictions", headers={"X-API-Key": _key(tenant, "events")}, json={"features": {}}
        )
        assert events_key.status_code == 403
        unknown = await direct.post(
            "/v1/predictions", headers={"X-API-Key": "ck_unknown"}, json={"features": {}}
        )
        assert unknown.status_code == 401


async def test_revoked_key_is_refused_within_the_cache_bound(stack, tenant):
    client, owner = tenant["client"], tenant["owner"]
    created = await create_api_key(client, owner, ["read", "predictions"], name="to-revoke")
    headers = {"X-API-Key": created["key"]}
    async with httpx.AsyncClient(base_url=stack.url("prediction"), timeout=30) as direct:
        assert (await client.get("/v1/customers", headers=headers)).status_code == 200
        assert (
            await direct.post("/v1/predictions", headers=headers, json={"features": {}})
        ).status_code == 200
        revoked = await client.delete(f"/v1/api-keys/{created['id']}", headers=owner.headers)
        assert revoked.status_code == 204, revoked.text
        started = time.monotonic()

        async def refused_everywhere() -> bool:
            gateway = await client.get("/v1/customers", headers=headers)
            predict = await direct.post("/v1/predictions", headers=headers, json={"features": {}})
            return gateway.status_code == 401 and predict.status_code == 401

        await wait_for(refused_everywhere, timeout=CACHE_SECONDS + 3, interval=0.2)
        assert time.monotonic() - started <= CACHE_SECONDS + 3
        listed = await client.get("/v1/api-keys", headers=owner.headers)
        assert created["id"] not in listed.text


async def test_live_feed_takes_api_keys_that_may_read(stack, tenant):
    reader, writer = LiveFeed(), LiveFeed()
    await reader.connect(stack.gateway_url, _key(tenant, "read"))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await writer.connect(stack.gateway_url, _key(tenant, "events"))
    assert reader.client.connected
    assert not writer.client.connected
    await reader.close()
