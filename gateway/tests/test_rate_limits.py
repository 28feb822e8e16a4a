"""Rate limits per client address (stricter on login/refresh) and per tenant, 429 + Retry-After."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")  # skips unless CHURN_TEST_REDIS_URL is set
    return url


async def test_client_address_over_the_limit_gets_429_with_retry_after(
    gateway, upstreams, bearer, cache_url
):
    async with gateway(upstreams, cache_url=cache_url, rate_limit="3/minute") as client:
        answers = [await client.get("/v1/alerts", headers=bearer()) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    limited = answers[-1]
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["request_id"] == limited.headers["x-request-id"]
    assert len(upstreams.calls_to("alerts")) == 3


async def test_the_limit_is_per_client_address(gateway, upstreams, bearer, cache_url):
    prefix = f"two-addresses-{uuid.uuid4().hex}"
    settings = {"cache_url": cache_url, "rate_limit": "2/minute"}
    async with gateway(
        upstreams, client_address=("198.51.100.1", 1), rate_limit_key_prefix=prefix, **settings
    ) as first:
        assert [
            (await first.get("/v1/alerts", headers=bearer())).status_code for _ in range(3)
        ] == [
            200,
            200,
            429,
        ]
    async with gateway(
        upstreams, client_address=("198.51.100.2", 1), rate_limit_key_prefix=prefix, **settings
    ) as second:
        assert (await second.get("/v1/alerts", headers=bearer())).status_code == 200


async def test_login_and_refresh_have_a_stricter_limit(gateway, upstreams, bearer, cache_url):
    async with gateway(
        upstreams, cache_url=cache_url, rate_limit="100/minute", auth_rate_limit="2/minute"
    ) as client:
        logins = [(await client.post("/v1/auth/login", json={})).status_code for _ in range(2)]
        refresh = await client.post("/v1/auth/refresh", json={})
        other = await client.get("/v1/alerts", headers=bearer())
    assert logins == [200, 200]
    assert refresh.status_code == 429
    assert "retry-after" in refresh.headers
    assert other.status_code == 200


async def test_each_tenant_has_its_own_budget(gateway, upstreams, bearer, cache_url):
    async with gateway(upstreams, cache_url=cache_url, tenant_rate_limit="2/minute") as client:
        tenant_a = [
            (await client.get("/v1/alerts", headers=bearer("a"))).status_code for _ in range(3)
        ]
        tenant_b = await client.get("/v1/alerts", headers=bearer("b"))
    assert tenant_a == [200, 200, 429]
    assert tenant_b.status_code == 200


async def test_health_endpoints_are_not_limited(gateway, upstreams, cache_url):
    async with gateway(upstreams, cache_url=cache_url, rate_limit="1/minute") as client:
        codes = [(await client.get("/livez")).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
