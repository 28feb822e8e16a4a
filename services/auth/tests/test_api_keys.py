"""Integrators' API keys: created once-shown, listed without secrets, revoked, verified."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import jwt

from churn_shared.security import TokenVerifier

MakeTenant = Callable[..., Any]
VERIFY = "/v1/auth/api-keys/verify"


async def verifier_for(client: httpx.AsyncClient) -> TokenVerifier:
    jwks = (await client.get("/v1/auth/.well-known/jwks.json")).json()

    async def source() -> dict[str, Any]:
        return jwks

    return TokenVerifier(source, issuer="churn-auth", audience="churn-platform")


async def test_create_list_verify_revoke(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant()

    created = await client.post(
        "/v1/api-keys",
        json={"name": "shop sync", "scopes": ["events:write", "read"]},
        headers=acme.owner,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key: str = body["key"]
    assert key.startswith(f"ck_{body['id']}_")
    assert len(key.split("_", 2)[2]) >= 43  # 32 random bytes, URL-safe base64
    assert body["name"] == "shop sync"
    assert body["scopes"] == ["events:write", "read"]
    assert body["created_at"]

    listed = await client.get("/v1/api-keys", headers=acme.owner)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["items"]] == [body["id"]]
    assert key not in listed.text
    assert "key" not in listed.json()["items"][0]
    assert key.split("_", 2)[2] not in listed.text

    verified = await client.post(VERIFY, json={"key": key})
    assert verified.status_code == 200, verified.text
    grant = verified.json()
    assert grant["key_id"] == body["id"]
    assert grant["tenant_id"] == acme.id
    assert grant["scopes"] == ["events:write", "read"]
    assert grant["name"] == "shop sync"
    principal = await (await verifier_for(client)).verify(grant["access_token"])
    assert principal.tenant_id == acme.id
    assert principal.subject == f"apikey:{body['id']}"
    assert principal.role == "analyst"
    assert principal.scopes == frozenset({"events:write", "read"})
    claims = jwt.decode(grant["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 300 + 1

    revoked = await client.delete(f"/v1/api-keys/{body['id']}", headers=acme.owner)
    again = await client.delete(f"/v1/api-keys/{body['id']}", headers=acme.owner)
    after = await client.post(VERIFY, json={"key": key})
    listed_after = await client.get("/v1/api-keys", headers=acme.owner)

    assert revoked.status_code == 204
    assert again.status_code == 404
    assert after.status_code == 401
    assert after.headers["content-type"].startswith("application/problem+json")
    assert listed_after.json()["items"] == []


async def test_read_only_key_acts_as_viewer(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant()
    key = (
        await client.post(
            "/v1/api-keys", json={"name": "bi", "scopes": ["read"]}, headers=acme.owner
        )
    ).json()["key"]

    grant = (await client.post(VERIFY, json={"key": key})).json()
    principal = await (await verifier_for(client)).verify(grant["access_token"])
    # The exchanged token is not a user: auth's user endpoints refuse it.
    me = await client.get(
        "/v1/users/me", headers={"Authorization": f"Bearer {grant['access_token']}"}
    )

    assert principal.role == "viewer"
    assert principal.scopes == frozenset({"read"})
    assert me.status_code == 403


async def test_wrong_secret_and_malformed_keys_are_401(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant()
    key = (
        await client.post(
            "/v1/api-keys", json={"name": "k", "scopes": ["predictions"]}, headers=acme.owner
        )
    ).json()["key"]
    prefix, key_id, secret = key.split("_", 2)
    tampered = f"{prefix}_{key_id}_{secret[:-2]}{'A' if secret[-2] != 'A' else 'B'}{secret[-1]}"

    answers = [
        await client.post(VERIFY, json={"key": candidate})
        for candidate in (tampered, f"ck_{'0' * 32}_{secret}", "ck_short_x", "garbage", "ck__")
    ]

    assert [a.status_code for a in answers] == [401] * 5
    assert len({a.json()["detail"] for a in answers}) == 1


async def test_roles_and_tenants(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    acme = await make_tenant("Acme")
    other = await make_tenant("Other")
    _, admin = await acme.add_user("admin@acme.example.com", "admin")
    _, analyst = await acme.add_user("analyst@acme.example.com", "analyst")
    acme_key = (
        await client.post("/v1/api-keys", json={"name": "a", "scopes": ["read"]}, headers=admin)
    ).json()

    by_analyst = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["read"]}, headers=analyst
    )
    list_by_analyst = await client.get("/v1/api-keys", headers=analyst)
    bad_scope = await client.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["admin"]}, headers=admin
    )
    no_scope = await client.post("/v1/api-keys", json={"name": "x", "scopes": []}, headers=admin)
    other_list = await client.get("/v1/api-keys", headers=other.owner)
    other_delete = await client.delete(f"/v1/api-keys/{acme_key['id']}", headers=other.owner)
    still = await client.post(VERIFY, json={"key": acme_key["key"]})

    assert by_analyst.status_code == 403
    assert list_by_analyst.status_code == 403
    assert bad_scope.status_code == 422
    assert no_scope.status_code == 422
    assert other_list.json()["items"] == []
    assert other_delete.status_code == 404
    assert still.status_code == 200
    assert still.json()["tenant_id"] == acme.id
