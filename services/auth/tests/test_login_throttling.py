"""Failed sign-ins are throttled per (account, address), per address and per account, so an
attacker cannot lock the owner out, and unknown e-mails are answered like real accounts, with
Redis healthy, dead or hung (docs/login-throttling.md)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from churn_auth.main import create_app
from testkit import free_port, hung_redis

PASSWORD = "correct horse battery staple"
WRONG = "wrong password!"
ATTACKER = "198.51.100.66"
OWNER_HOME = "203.0.113.5"


async def register(http: httpx.AsyncClient, email: str) -> None:
    response = await http.post(
        "/v1/auth/register", json={"tenant_name": "Acme", "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text


async def attempt(
    http: httpx.AsyncClient, email: str, password: str, address: str
) -> httpx.Response:
    """A sign-in from ``address`` (the in-process peer is loopback, a trusted proxy)."""
    return await http.post(
        "/v1/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


def same_answer(first: httpx.Response, second: httpx.Response) -> bool:
    """Status, problem fields and ``Retry-After`` presence alike (the request id differs)."""
    if first.status_code != second.status_code:
        return False
    if ("retry-after" in first.headers) != ("retry-after" in second.headers):
        return False
    a, b = first.json(), second.json()
    fields = ("type", "title", "status", "detail")
    return set(a) == set(b) and all(a.get(f) == b.get(f) for f in fields)


@pytest.fixture(params=["memory", "redis"])
def cache_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")  # skips unless CHURN_TEST_REDIS_URL is set
    return url


def throttled_settings(make_settings: Callable[..., Any], cache_url: str, **extra: Any) -> Any:
    return make_settings(
        cache_url=cache_url,
        rate_limit_enabled=True,
        rate_limit_key_prefix=f"test-{uuid.uuid4().hex}",
        **extra,
    )


@pytest.mark.parametrize("target", ["owner@example.com", "nobody@example.com"])
async def test_an_attacker_address_cannot_lock_the_owner_out(
    make_settings: Callable[..., Any],
    in_process: Callable[..., Any],
    cache_url: str,
    target: str,
) -> None:
    """30 wrong passwords from one address: that address is refused (429 + Retry-After), the
    owner signs in from home; an unknown e-mail gets the same answers, and is not locked for
    other addresses either."""
    app = create_app(throttled_settings(make_settings, cache_url))
    async with in_process(app) as http:
        await register(http, "owner@example.com")

        attack = [await attempt(http, target, WRONG, ATTACKER) for _ in range(30)]
        from_home = await attempt(http, target, PASSWORD, OWNER_HOME)

    if target == "owner@example.com":
        assert from_home.status_code == 200, from_home.text
        assert from_home.json()["access_token"]
    else:
        # Not locked for the other address: the plain "wrong credentials" answer.
        assert from_home.status_code == 401
    assert [r.status_code for r in attack] == [401] * 5 + [429] * 25
    refused = attack[-1]
    assert refused.json()["type"].endswith("login-locked")
    assert 1 <= int(refused.headers["retry-after"]) <= 30


async def test_unknown_emails_get_the_answers_real_accounts_get(
    make_settings: Callable[..., Any], in_process: Callable[..., Any], cache_url: str
) -> None:
    """Locks, their growth and their Retry-After alike, whether or not the account exists."""
    settings = throttled_settings(
        make_settings, cache_url, lockout_threshold=3, lockout_base_seconds=1
    )
    targets = ("owner@example.com", "nobody@example.com")
    answers: dict[str, list[httpx.Response]] = {target: [] for target in targets}
    async with in_process(create_app(settings)) as http:
        await register(http, "owner@example.com")
        for target in targets:
            for password in (WRONG, WRONG, WRONG, PASSWORD):
                answers[target].append(await attempt(http, target, password, ATTACKER))
        await asyncio.sleep(1.1)  # the first lock is over; one more failure locks for longer
        for target in targets:
            for password in (WRONG, PASSWORD):
                answers[target].append(await attempt(http, target, password, ATTACKER))

    real, ghost = answers["owner@example.com"], answers["nobody@example.com"]
    assert [r.status_code for r in real] == [401, 401, 401, 429, 401, 429]
    assert all(same_answer(a, b) for a, b in zip(real, ghost, strict=True))
    assert real[3].headers["retry-after"] == ghost[3].headers["retry-after"] == "1"
    assert real[5].headers["retry-after"] == ghost[5].headers["retry-after"] == "2"


async def test_one_address_failing_on_many_accounts_is_refused(
    make_settings: Callable[..., Any], in_process: Callable[..., Any], cache_url: str
) -> None:
    settings = throttled_settings(make_settings, cache_url, login_failures_per_address="4/minute")
    async with in_process(create_app(settings)) as http:
        await register(http, "owner@example.com")
        spray = [await attempt(http, f"victim{i}@example.com", WRONG, ATTACKER) for i in range(6)]
        owner_from_attacker = await attempt(http, "owner@example.com", PASSWORD, ATTACKER)
        owner_from_home = await attempt(http, "owner@example.com", PASSWORD, OWNER_HOME)

    assert [r.status_code for r in spray] == [401, 401, 401, 401, 429, 429]
    assert spray[-1].headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(spray[-1].headers["retry-after"]) <= 60
    assert owner_from_attacker.status_code == 429
    assert owner_from_home.status_code == 200


async def test_an_account_failing_from_many_addresses_is_slowed_never_locked(
    make_settings: Callable[..., Any], in_process: Callable[..., Any], cache_url: str
) -> None:
    settings = throttled_settings(
        make_settings,
        cache_url,
        login_failures_per_account="4/minute",
        login_account_delay_seconds=0.3,
    )
    async with in_process(create_app(settings)) as http:
        await register(http, "owner@example.com")
        for target in ("owner@example.com", "nobody@example.com"):
            for bot in range(3):  # two failures from each of three addresses: no pair lock
                for _ in range(2):
                    answer = await attempt(http, target, WRONG, f"192.0.2.{bot + 1}")
                    assert answer.status_code == 401
        started = time.perf_counter()
        owner = await attempt(http, "owner@example.com", PASSWORD, OWNER_HOME)
        owner_seconds = time.perf_counter() - started
        started = time.perf_counter()
        ghost = await attempt(http, "nobody@example.com", PASSWORD, OWNER_HOME)
        ghost_seconds = time.perf_counter() - started

    assert owner.status_code == 200
    assert ghost.status_code == 401
    assert owner_seconds >= 0.3
    assert ghost_seconds >= 0.3


async def test_with_redis_dead_unknown_emails_are_locked_like_real_accounts(
    make_settings: Callable[..., Any], in_process: Callable[..., Any]
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    app = create_app(throttled_settings(make_settings, dead, lockout_threshold=3))
    async with in_process(app) as http:
        await register(http, "owner@example.com")
        real = [await attempt(http, "owner@example.com", WRONG, ATTACKER) for _ in range(4)]
        ghost = [await attempt(http, "nobody@example.com", WRONG, ATTACKER) for _ in range(4)]
        from_home = await attempt(http, "owner@example.com", PASSWORD, OWNER_HOME)

    assert [r.status_code for r in real] == [401, 401, 401, 429]
    assert all(same_answer(a, b) for a, b in zip(real, ghost, strict=True))
    assert from_home.status_code == 200


async def test_a_hung_redis_does_not_hold_up_sign_ins(
    make_settings: Callable[..., Any], in_process: Callable[..., Any]
) -> None:
    async with hung_redis() as url, asyncio.timeout(60):
        app = create_app(throttled_settings(make_settings, url, lockout_threshold=3))
        async with in_process(app) as http:
            await register(http, "owner@example.com")
            timings: list[float] = []
            answers: list[httpx.Response] = []
            for password in (WRONG, WRONG, WRONG, PASSWORD, PASSWORD):
                started = time.perf_counter()
                answers.append(await attempt(http, "owner@example.com", password, ATTACKER))
                timings.append(time.perf_counter() - started)
            from_home = await attempt(http, "owner@example.com", PASSWORD, OWNER_HOME)

    print(f"sign-in with a hung Redis: {[round(t * 1000) for t in timings]} ms")
    assert [r.status_code for r in answers] == [401, 401, 401, 429, 429]
    assert from_home.status_code == 200
    assert max(timings) < 1.0
