"""The tenant directory's answers and memory, with auth's lookup faked by httpx.MockTransport."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
import pytest

from churn_customers.tenants import HttpTenantDirectory, TenantDirectoryUnavailableError


class Auth:
    """Answers ``GET /v1/auth/tenants/{id}`` as auth does; counts the calls."""

    def __init__(self, tenants: set[str]) -> None:
        self.tenants = tenants
        self.calls: list[str] = []
        self.failing: int | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        sent = request.url.raw_path.decode().rsplit("/", 1)[1]
        self.calls.append(sent)
        tenant_id = unquote(sent)
        if self.failing is not None:
            return httpx.Response(self.failing)
        if tenant_id in self.tenants:
            return httpx.Response(200, json={"id": tenant_id, "created_at": "2026-01-01T00:00:00Z"})
        return httpx.Response(404, json={"title": "Not Found"})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def directory(auth: Auth, clock: Clock, max_entries: int = 100) -> HttpTenantDirectory:
    client = httpx.AsyncClient(base_url="http://auth.test", transport=httpx.MockTransport(auth))
    return HttpTenantDirectory(
        client, known_ttl=60, unknown_ttl=5, max_entries=max_entries, clock=clock
    )


async def test_unknown_tenants_are_told_apart_from_known_ones() -> None:
    auth = Auth({"acme"})
    tenants = directory(auth, Clock())

    assert await tenants.unknown({"acme", "nobody"}) == {"nobody"}


async def test_answers_are_remembered_until_they_expire() -> None:
    auth, clock = Auth({"acme"}), Clock()
    tenants = directory(auth, clock)
    await tenants.unknown({"acme", "later"})

    clock.now = 4.0
    assert await tenants.unknown({"acme", "later"}) == {"later"}
    assert sorted(auth.calls) == ["acme", "later"]  # answered from memory

    auth.tenants.add("later")  # registered meanwhile: seen once the short memory expires
    clock.now = 6.0
    assert await tenants.unknown({"acme", "later"}) == set()
    assert sorted(auth.calls) == ["acme", "later", "later"]

    clock.now = 61.0
    await tenants.unknown({"acme"})
    assert auth.calls.count("acme") == 2


async def test_ids_are_sent_as_one_path_segment() -> None:
    auth = Auth(set())
    tenants = directory(auth, Clock())

    assert await tenants.unknown({"a/b?c"}) == {"a/b?c"}
    assert auth.calls == ["a%2Fb%3Fc"]


@pytest.mark.parametrize("status", [500, 503, 401])
async def test_an_unexpected_answer_means_auth_cannot_tell(status: int) -> None:
    auth = Auth({"acme"})
    auth.failing = status
    tenants = directory(auth, Clock())

    with pytest.raises(TenantDirectoryUnavailableError):
        await tenants.unknown({"acme"})
    auth.failing = None  # nothing was remembered from the failure
    assert await tenants.unknown({"acme"}) == set()


async def test_an_unreachable_auth_means_auth_cannot_tell() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.AsyncClient(base_url="http://auth.test", transport=httpx.MockTransport(refuse))
    tenants = HttpTenantDirectory(client)

    with pytest.raises(TenantDirectoryUnavailableError, match="unreachable"):
        await tenants.unknown({"acme"})


async def test_memory_is_bounded() -> None:
    auth = Auth({"a", "b", "c"})
    tenants = directory(auth, Clock(), max_entries=2)
    await tenants.unknown({"a"})
    await tenants.unknown({"b"})
    await tenants.unknown({"c"})  # "a" is forgotten

    await tenants.unknown({"a"})
    assert auth.calls.count("a") == 2
