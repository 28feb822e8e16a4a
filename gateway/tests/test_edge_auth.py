"""Edge authentication: bad credentials are refused before any upstream sees the request."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from churn_gateway.authentication import EdgeAuthenticator
from churn_shared.errors import UnauthorizedError
from churn_shared.security import ApiKeyGrant, Principal


def _bad_tokens(signer: Any) -> dict[str, str]:
    stranger = type(signer)()  # another key pair, unknown to the JWKS
    return {
        "garbage": "abc.def.ghi",
        "expired": signer.issue("tenant-a", ttl=timedelta(minutes=-5)),
        "wrong_audience": signer.issue("tenant-a", aud="someone-else"),
        "wrong_issuer": signer.issue("tenant-a", iss="evil"),
        "refresh_token_type": signer.issue("tenant-a", typ="refresh"),
        "unknown_key": stranger.issue("tenant-a"),
        "unknown_role": signer.issue("tenant-a", role="god"),
    }


async def test_missing_token_is_401_and_upstream_not_called(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.get("/v1/customers")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.headers["www-authenticate"] == "Bearer"
    assert upstreams.calls_to("customers") == []


@pytest.mark.parametrize(
    "kind",
    [
        "garbage",
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "refresh_token_type",
        "unknown_key",
        "unknown_role",
    ],
)
async def test_invalid_token_is_401_and_upstream_not_called(gateway, upstreams, token_signer, kind):
    token = _bad_tokens(token_signer)[kind]
    async with gateway(upstreams) as client:
        response = await client.post(
            "/v1/events", headers={"Authorization": f"Bearer {token}"}, json={"events": []}
        )
    assert response.status_code == 401, kind
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "invalid_token" in response.headers["www-authenticate"]
    assert upstreams.calls_to("customers") == []


@pytest.mark.parametrize("scheme", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-jwt"])
async def test_non_bearer_credentials_are_401(gateway, upstreams, scheme):
    async with gateway(upstreams) as client:
        response = await client.get("/v1/alerts", headers={"Authorization": scheme})
    assert response.status_code == 401
    assert upstreams.calls_to("alerts") == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/auth/register"),
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/refresh"),
        ("POST", "/v1/auth/logout"),
        ("GET", "/v1/auth/.well-known/jwks.json"),
    ],
)
async def test_public_auth_routes_pass_without_token(gateway, upstreams, method, path):
    async with gateway(upstreams) as client:
        response = await client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 200
    assert response.json()["path"] == path if "jwks" not in path else "keys" in response.json()


async def test_public_paths_need_a_token_with_other_methods(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.get("/v1/auth/login")
    assert response.status_code == 401
    assert upstreams.calls_to("auth") == []


async def test_valid_token_reaches_the_upstream(gateway, upstreams, bearer):
    async with gateway(upstreams) as client:
        response = await client.get("/v1/users/me", headers=bearer(str(uuid.uuid4())))
    assert response.status_code == 200
    assert len(upstreams.calls_to("auth")) == 1


async def test_api_keys_are_refused_until_a_verifier_is_configured(token_signer):
    authenticator = EdgeAuthenticator(token_signer.verifier())
    with pytest.raises(UnauthorizedError):
        await authenticator.authenticate(None, api_key="ck_live_123")


async def test_api_key_verifier_plugs_in(token_signer):
    async def verify_key(key: str) -> ApiKeyGrant:
        assert key == "ck_live_123"
        principal = Principal(subject="apikey:key-1", tenant_id="tenant-k", role="analyst")
        return ApiKeyGrant(principal=principal, access_token="exchanged.jwt.token")

    authenticator = EdgeAuthenticator(token_signer.verifier(), api_key_verifier=verify_key)
    caller = await authenticator.authenticate(None, api_key="ck_live_123")
    assert caller.tenant_id == "tenant-k"
    assert caller.upstream_authorization == "Bearer exchanged.jwt.token"
    bearer_key = await authenticator.authenticate("Bearer ck_live_123")
    assert bearer_key.subject == "apikey:key-1"
