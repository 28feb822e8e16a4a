"""Sessions against the real stack: refresh-token reuse revokes the family, logout revokes it,
a password change revokes the other sessions, a deactivated user is locked out, and a signing-key
rotation logs nobody out while new tokens carry the new ``kid``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from testkit import wait_for
from tests.security._helpers import PASSWORD, add_user, login, register

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def client(stack: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        yield http


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_reuse_revokes_the_family(client):
    owner = await register(client, "reuse")
    first = await _refresh(client, owner.refresh_token)
    assert first.status_code == 200, first.text
    rotated = first.json()["refresh_token"]
    assert rotated != owner.refresh_token
    # A second tab presenting the same token at once gets the same new pair (grace, 10 s) …
    tab = await _refresh(client, owner.refresh_token)
    assert tab.status_code == 200, tab.text
    assert tab.json()["refresh_token"] == rotated
    await asyncio.sleep(11)
    # … but the thief (or the victim) presenting it after the grace: reuse detected …
    reused = await _refresh(client, owner.refresh_token)
    assert reused.status_code == 401
    # … and the whole family is revoked, including the newest token.
    assert (await _refresh(client, rotated)).status_code == 401
    # Another login (another family) is unaffected.
    other = await login(client, owner.email)
    assert (await _refresh(client, other["refresh_token"])).status_code == 200


async def test_logout_revokes_the_family_only(client):
    owner = await register(client, "logout")
    second = await login(client, owner.email)
    rotated = (await _refresh(client, owner.refresh_token)).json()["refresh_token"]
    out = await client.post("/v1/auth/logout", json={"refresh_token": rotated})
    assert out.status_code == 204, out.text
    assert (await _refresh(client, rotated)).status_code == 401
    assert (await _refresh(client, owner.refresh_token)).status_code == 401
    assert (await _refresh(client, second["refresh_token"])).status_code == 200


async def test_password_change_revokes_the_other_sessions(client):
    owner = await register(client, "password")
    other = await login(client, owner.email)
    new_password = PASSWORD + " and more"
    changed = await client.post(
        "/v1/users/me/password",
        headers=owner.headers,
        json={
            "old_password": PASSWORD,
            "new_password": new_password,
            "keep_refresh_token": owner.refresh_token,
        },
    )
    assert changed.status_code == 204, changed.text
    assert (await _refresh(client, other["refresh_token"])).status_code == 401
    assert (await _refresh(client, owner.refresh_token)).status_code == 200
    old = await client.post("/v1/auth/login", json={"email": owner.email, "password": PASSWORD})
    assert old.status_code == 401
    await login(client, owner.email, new_password)
    wrong_old = await client.post(
        "/v1/users/me/password",
        headers=owner.headers,
        json={"old_password": "not the password", "new_password": PASSWORD + " again!"},
    )
    assert wrong_old.status_code in (400, 401, 403), wrong_old.text


async def test_deactivated_user_is_locked_out(stack, client):
    """Refresh and login fail at once; the auth service refuses the access token at once. The
    other services verify tokens locally and cannot know: there the access token keeps working
    until it expires (≤ the access-token lifetime, 15 min by default; the expiry check itself is
    proven in test_jwt's ``expired`` cases and, with a 30 s lifetime, in
    test_deactivation_expiry)."""
    owner = await register(client, "deactivate")
    analyst = await add_user(client, owner, "analyst")
    assert (await client.get("/v1/customers", headers=analyst.headers)).status_code == 200
    off = await client.patch(
        f"/v1/users/{analyst.user_id}", headers=owner.headers, json={"active": False}
    )
    assert off.status_code == 200, off.text
    assert off.json()["active"] is False
    assert (await _refresh(client, analyst.refresh_token)).status_code == 401
    relogin = await client.post(
        "/v1/auth/login", json={"email": analyst.email, "password": PASSWORD}
    )
    assert relogin.status_code == 401
    me = await client.get("/v1/users/me", headers=analyst.headers)
    assert me.status_code == 401, me.text
    claims = jwt.decode(analyst.access_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 900


async def test_key_rotation_keeps_sessions_and_new_tokens_use_the_new_kid(stack, client):
    owner = await register(client, "rotate")
    old_kid = owner.kid
    before = (await client.get("/v1/auth/.well-known/jwks.json")).json()
    assert old_kid in {k["kid"] for k in before["keys"]}

    analyst = await add_user(client, owner, "analyst")
    refused = await client.post("/v1/auth/keys/rotate", headers=analyst.headers)
    assert refused.status_code == 403

    rotated = await client.post("/v1/auth/keys/rotate", headers=owner.headers)
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid
    assert old_kid in rotated.json()["previous_kids"]

    jwks = (await client.get("/v1/auth/.well-known/jwks.json")).json()
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}

    # Existing sessions keep working everywhere …
    for base in (stack.gateway_url, stack.url("customers"), stack.url("alerts")):
        async with httpx.AsyncClient(base_url=base, timeout=30) as direct:
            path = "/v1/alerts" if base == stack.url("alerts") else "/v1/customers"
            response = await direct.get(path, headers=owner.headers)
            assert response.status_code == 200, (base, response.text)
    assert (await client.get("/v1/users/me", headers=owner.headers)).status_code == 200
    # … refresh tokens too, and what they (and new logins) return is signed with the new key.
    refreshed = await _refresh(client, owner.refresh_token)
    assert refreshed.status_code == 200, refreshed.text
    fresh = await login(client, owner.email)
    for token in (refreshed.json()["access_token"], fresh["access_token"]):
        assert jwt.get_unverified_header(token)["kid"] == new_kid
    headers = {"Authorization": f"Bearer {fresh['access_token']}"}

    async def accepted() -> bool:
        async with httpx.AsyncClient(base_url=stack.url("customers"), timeout=30) as direct:
            service = await direct.get("/v1/customers", headers=headers)
        gateway = await client.get("/v1/customers", headers=headers)
        return service.status_code == 200 and gateway.status_code == 200

    # Verifiers fetch the JWKS again on an unknown kid (at most every 10 s).
    await wait_for(accepted, timeout=15, interval=0.5)
