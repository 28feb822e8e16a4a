"""API keys at the edge: exchanged at auth for a token, cached briefly, limited by scopes."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from churn_gateway.authentication import EdgeAuthenticator
from churn_shared.errors import ForbiddenError, UnauthorizedError
from churn_shared.security import ApiKeyExchanger

KEYS: dict[str, tuple[str, ...]] = {
    "ck_events": ("events:write",),
    "ck_predict": ("predictions",),
    "ck_read": ("read",),
    "ck_all": ("events:write", "predictions", "read"),
}


class FakeAuth:
    """The auth service's verify endpoint (and its JWKS), with keys that can be revoked."""

    def __init__(self, signer: Any) -> None:
        self.signer = signer
        self.keys = dict(KEYS)
        self.verify_calls: list[str] = []
        self.app = FastAPI()

        @self.app.get("/v1/auth/.well-known/jwks.json")
        async def jwks() -> dict[str, Any]:
            return dict(signer.jwks())

        @self.app.post("/v1/auth/api-keys/verify")
        async def verify(body: dict[str, str]) -> JSONResponse:
            key = body["key"]
            self.verify_calls.append(key)
            if key not in self.keys:
                return JSONResponse({"title": "Unauthorized"}, status_code=401)
            scopes = list(self.keys[key])
            key_id = hashlib.sha256(key.encode()).hexdigest()[:12]
            token = signer.issue(
                "tenant-k",
                role="analyst",
                subject=f"apikey:{key_id}",
                ttl=timedelta(minutes=5),
                scp=scopes,
            )
            return JSONResponse(
                {
                    "key_id": key_id,
                    "tenant_id": "tenant-k",
                    "scopes": scopes,
                    "name": "integration",
                    "access_token": token,
                }
            )


@pytest.fixture
def fake_auth(token_signer: Any, upstreams: Any) -> FakeAuth:
    auth = FakeAuth(token_signer)
    upstreams.transports["auth.test"] = httpx.ASGITransport(app=auth.app)
    return auth


async def test_api_key_is_exchanged_and_never_forwarded(gateway, upstreams, fake_auth):
    async with gateway(upstreams) as client:
        by_header = await client.post(
            "/v1/events", headers={"X-API-Key": "ck_events"}, json={"events": []}
        )
        by_bearer = await client.post(
            "/v1/events", headers={"Authorization": "Bearer ck_events"}, json={"events": []}
        )
    for response in (by_header, by_bearer):
        assert response.status_code == 200, response.text
        seen = response.json()["headers"]
        assert "x-api-key" not in seen
        scheme, token = seen["authorization"].split(" ")
        assert scheme == "Bearer"
        assert token.count(".") == 2
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["sub"].startswith("apikey:")
        assert claims["scp"] == ["events:write"]
    # The second request was served from the cache.
    assert fake_auth.verify_calls == ["ck_events"]


@pytest.mark.parametrize(
    ("key", "method", "path", "allowed"),
    [
        ("ck_events", "POST", "/v1/events", True),
        ("ck_events", "GET", "/v1/alert-channels", False),
        ("ck_events", "GET", "/v1/customers", False),
        ("ck_events", "POST", "/v1/predictions", False),
        ("ck_events", "POST", "/v1/customers", False),
        ("ck_predict", "POST", "/v1/predictions", True),
        ("ck_predict", "POST", "/v1/predictions/batch", True),
        ("ck_predict", "POST", "/v1/events", False),
        ("ck_predict", "GET", "/v1/models/current", False),
        ("ck_read", "GET", "/v1/customers", True),
        ("ck_read", "GET", "/v1/alert-channels", True),
        ("ck_read", "GET", "/v1/models/current", True),
        ("ck_read", "POST", "/v1/events", False),
        ("ck_read", "DELETE", "/v1/customers/c1", False),
        ("ck_read", "PUT", "/v1/alert-rules", False),
        ("ck_all", "PATCH", "/v1/customers/c1", False),
        ("ck_all", "POST", "/v1/api-keys", False),
        ("ck_all", "POST", "/v1/users", False),
    ],
)
async def test_scopes_are_enforced_at_the_edge(
    gateway, upstreams, fake_auth, key, method, path, allowed
):
    async with gateway(upstreams) as client:
        response = await client.request(method, path, headers={"X-API-Key": key}, json={})
    upstream = path.split("/")[2]
    if allowed:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert all(upstream not in c.url.path for c in upstreams.calls if c.url.host != "auth.test")


async def test_unknown_key_is_401_and_refusals_are_cached_briefly(gateway, upstreams, fake_auth):
    async with gateway(upstreams, api_key_failure_cache_seconds=0.3) as client:
        first = await client.get("/v1/customers", headers={"X-API-Key": "ck_nope"})
        second = await client.get("/v1/customers", headers={"X-API-Key": "ck_nope"})
        assert first.status_code == second.status_code == 401
        assert fake_auth.verify_calls == ["ck_nope"]
        fake_auth.keys["ck_nope"] = ("read",)  # the key exists now (e.g. created meanwhile)
        await asyncio.sleep(0.35)
        third = await client.get("/v1/customers", headers={"X-API-Key": "ck_nope"})
    assert third.status_code == 200
    assert fake_auth.verify_calls == ["ck_nope", "ck_nope"]
    assert upstreams.calls_to("customers")[-1].headers["authorization"].startswith("Bearer ey")


async def test_revoked_key_stops_working_within_the_cache_ttl(gateway, upstreams, fake_auth):
    async with gateway(upstreams, api_key_cache_seconds=0.3) as client:
        ok = await client.get("/v1/customers", headers={"X-API-Key": "ck_read"})
        assert ok.status_code == 200
        del fake_auth.keys["ck_read"]
        cached = await client.get("/v1/customers", headers={"X-API-Key": "ck_read"})
        assert cached.status_code == 200  # still within the cache TTL
        await asyncio.sleep(0.35)
        revoked = await client.get("/v1/customers", headers={"X-API-Key": "ck_read"})
    assert revoked.status_code == 401


async def test_cache_is_keyed_by_hash_never_by_key(fake_auth, token_signer):
    transport = httpx.ASGITransport(app=fake_auth.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
        exchanger = ApiKeyExchanger(
            client, "http://auth.test/v1/auth/api-keys/verify", token_signer.verifier()
        )
        grant = await exchanger.exchange("ck_all")
        assert grant.principal.scopes == frozenset(KEYS["ck_all"])
        assert "ck_all" not in repr(grant)
        assert list(exchanger._cache) == [hashlib.sha256(b"ck_all").hexdigest()]
        assert "ck_all" not in repr(exchanger._cache)
        with pytest.raises(UnauthorizedError):
            await exchanger.exchange("not-a-key")
    with pytest.raises(ValueError, match="60"):
        ApiKeyExchanger(client, "http://x", token_signer.verifier(), ttl_seconds=61)
    with pytest.raises(ValueError, match="5"):
        ApiKeyExchanger(client, "http://x", token_signer.verifier(), failure_ttl_seconds=6)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/auth/api-keys/verify",
        "/v1/auth/api-keys/verify/",
        "/v1/auth/api-keys%2Fverify",
        "/v1/auth/API-KEYS/verify",
        "/v1/auth/./api-keys/verify",
    ],
)
@pytest.mark.parametrize("credentials", ["none", "key", "token"])
async def test_verify_endpoint_is_not_reachable_from_outside(
    gateway, upstreams, fake_auth, bearer, path, credentials
):
    headers = {
        "none": {},
        "key": {"X-API-Key": "ck_all"},
        "token": bearer("tenant-a"),
    }[credentials]
    async with gateway(upstreams) as client:
        response = await client.post(path, headers=headers, json={"key": "ck_all"})
    assert response.status_code == 404
    assert fake_auth.verify_calls == []


async def test_live_feed_accepts_user_tokens_and_keys_that_may_read(token_signer):
    authenticator = EdgeAuthenticator(token_signer.verifier())
    user = await authenticator.authenticate_feed(token_signer.issue("tenant-a"))
    reader = token_signer.issue("tenant-a", role="viewer", subject="apikey:k1", scp=["read"])
    writer = token_signer.issue(
        "tenant-a", role="analyst", subject="apikey:k2", scp=["events:write"]
    )

    assert user.tenant_id == "tenant-a"
    assert (await authenticator.authenticate_feed(reader)).principal.is_api_key
    with pytest.raises(ForbiddenError):
        await authenticator.authenticate_feed(writer)
    with pytest.raises(UnauthorizedError):
        await authenticator.authenticate_feed("")
