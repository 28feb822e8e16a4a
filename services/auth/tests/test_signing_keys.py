"""Signing-key rotation: nobody is logged out, new tokens carry the new kid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from churn_auth.admin import rotate_keys
from churn_auth.main import create_app
from churn_shared.security import TokenVerifier

PASSWORD = "correct horse battery staple"
MakeTenant = Callable[..., Any]


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_rotation_keeps_sessions_and_switches_kid(
    client: httpx.AsyncClient, make_tenant: MakeTenant
) -> None:
    acme = await make_tenant()
    old_token = acme.owner_tokens["access_token"]
    old_kid = kid_of(old_token)

    rotated = await client.post("/v1/auth/keys/rotate", headers=acme.owner)
    jwks = (await client.get("/v1/auth/.well-known/jwks.json")).json()
    old_still_valid = await client.get("/v1/users/me", headers=acme.owner)
    fresh = await acme.login(acme.owner_email)
    refreshed = await client.post(
        "/v1/auth/refresh", json={"refresh_token": acme.owner_tokens["refresh_token"]}
    )

    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid
    assert rotated.json()["previous_kids"] == [old_kid]
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
    assert old_still_valid.status_code == 200
    assert kid_of(fresh["access_token"]) == new_kid
    assert kid_of(refreshed.json()["access_token"]) == new_kid

    async def source() -> dict[str, Any]:
        return jwks

    verifier = TokenVerifier(source, issuer="churn-auth", audience="churn-platform")
    assert (await verifier.verify(old_token)).subject == acme.owner_id
    assert (await verifier.verify(fresh["access_token"])).subject == acme.owner_id


async def test_only_owners_rotate(client: httpx.AsyncClient, make_tenant: MakeTenant) -> None:
    acme = await make_tenant()
    _, admin = await acme.add_user("admin@acme.example.com", "admin")

    by_admin = await client.post("/v1/auth/keys/rotate", headers=admin)
    anonymous = await client.post("/v1/auth/keys/rotate")

    assert by_admin.status_code == 403
    assert anonymous.status_code == 401


async def test_replica_picks_up_a_key_rotated_elsewhere(
    make_settings: Callable[..., Any], in_process: Callable[..., Any]
) -> None:
    """The CLI (or another replica) rotates in the database; this replica reloads before signing."""
    settings = make_settings(signing_key_cache_seconds=0, jwks_cache_seconds=0)
    async with in_process(create_app(settings)) as http:
        await http.post(
            "/v1/auth/register",
            json={"tenant_name": "Acme", "email": "o@acme.example.com", "password": PASSWORD},
        )
        body = {"email": "o@acme.example.com", "password": PASSWORD}
        before = (await http.post("/v1/auth/login", json=body)).json()

        rotated = await rotate_keys(settings)

        after = (await http.post("/v1/auth/login", json=body)).json()
        jwks = (await http.get("/v1/auth/.well-known/jwks.json")).json()
        old_me = await http.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {before['access_token']}"}
        )
        new_me = await http.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {after['access_token']}"}
        )

    assert kid_of(after["access_token"]) == rotated.kid
    assert rotated.previous_kids == [kid_of(before["access_token"])]
    assert {k["kid"] for k in jwks["keys"]} == {rotated.kid, kid_of(before["access_token"])}
    assert old_me.status_code == 200
    assert new_me.status_code == 200


async def _stored_pems(settings: Any) -> dict[str, str]:
    import sqlalchemy as sa

    from churn_shared.db import create_engine

    engine = create_engine(settings.database_url.get_secret_value())
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(sa.text("SELECT kid, private_key_pem FROM signing_keys"))
            return {str(kid): str(pem) for kid, pem in rows}
    finally:
        await engine.dispose()


async def test_a_passphrase_encrypts_signing_keys_at_rest(
    make_settings: Callable[..., Any], in_process: Callable[..., Any]
) -> None:
    """A plain key stored before the passphrase keeps working; new keys are encrypted; the
    database alone no longer yields a key, and a wrong passphrase fails loudly at start-up."""
    plain = make_settings()
    async with in_process(create_app(plain)) as http:
        await http.post(
            "/v1/auth/register",
            json={"tenant_name": "Acme", "email": "o@acme.example.com", "password": PASSWORD},
        )
    ((legacy_kid, legacy_pem),) = (await _stored_pems(plain)).items()
    assert legacy_pem.startswith("-----BEGIN PRIVATE KEY-----")

    locked = make_settings(signing_key_passphrase="s3cret passphrase", signing_key_cache_seconds=0)
    body = {"email": "o@acme.example.com", "password": PASSWORD}
    async with in_process(create_app(locked)) as http:
        before = (await http.post("/v1/auth/login", json=body)).json()
        assert kid_of(before["access_token"]) == legacy_kid  # the plain key still opens
        owner = {"Authorization": f"Bearer {before['access_token']}"}
        rotated = await http.post("/v1/auth/keys/rotate", headers=owner)
        assert rotated.status_code == 200, rotated.text
        after = (await http.post("/v1/auth/login", json=body)).json()
        me = await http.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {after['access_token']}"}
        )
    new_kid = rotated.json()["kid"]
    assert kid_of(after["access_token"]) == new_kid
    assert me.status_code == 200
    new_pem = (await _stored_pems(locked))[new_kid]
    assert new_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")

    from churn_auth.tokens import SigningKeyLockedError

    for wrong in (make_settings(), make_settings(signing_key_passphrase="not it")):
        with pytest.raises(SigningKeyLockedError):
            async with in_process(create_app(wrong)):
                pass
