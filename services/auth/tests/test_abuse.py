"""Throttling of login and refresh, and the growing lock of one account from one address."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from churn_auth.main import create_app
from churn_auth.models import User
from churn_shared.db import unit_of_work

PASSWORD = "correct horse battery staple"
PROBLEM_JSON = "application/problem+json"


async def register(http: httpx.AsyncClient, email: str) -> None:
    response = await http.post(
        "/v1/auth/register", json={"tenant_name": "Acme", "email": email, "password": PASSWORD}
    )
    assert response.status_code == 201, response.text


async def attempt(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/v1/auth/login", json={"email": email, "password": password})


async def test_lockout_grows_and_looks_the_same_for_unknown_accounts(
    make_settings: Callable[..., Any], in_process: Callable[..., Any]
) -> None:
    app = create_app(make_settings(lockout_threshold=3, lockout_base_seconds=1))
    async with in_process(app) as http:
        await register(http, "victim@example.com")

        failures = [await attempt(http, "victim@example.com", "wrong password!") for _ in range(3)]
        locked = await attempt(http, "victim@example.com", PASSWORD)
        ghost_failures = [
            await attempt(http, "ghost@example.com", "wrong password!") for _ in range(3)
        ]
        ghost_locked = await attempt(http, "ghost@example.com", PASSWORD)

        assert [r.status_code for r in failures] == [401, 401, 401]
        assert [r.status_code for r in ghost_failures] == [401, 401, 401]
        assert locked.status_code == ghost_locked.status_code == 429
        assert locked.headers["content-type"].startswith(PROBLEM_JSON)
        assert locked.headers["retry-after"] == ghost_locked.headers["retry-after"] == "1"
        locked_body, ghost_body = locked.json(), ghost_locked.json()
        for field in ("type", "title", "status", "detail"):
            assert locked_body[field] == ghost_body[field]
        assert set(locked_body) == set(ghost_body)

        # The lock expires; one more failure locks for twice as long.
        await asyncio.sleep(1.1)
        fourth = await attempt(http, "victim@example.com", "wrong password!")
        relocked = await attempt(http, "victim@example.com", PASSWORD)
        assert fourth.status_code == 401
        assert relocked.status_code == 429
        assert 1 <= int(relocked.headers["retry-after"]) <= 2

        # Once the lock is over, the right password works and resets the count.
        await asyncio.sleep(2.1)
        ok = await attempt(http, "victim@example.com", PASSWORD)
        assert ok.status_code == 200
        again = [await attempt(http, "victim@example.com", "wrong password!") for _ in range(3)]
        assert [r.status_code for r in again] == [401, 401, 401]
        async with unit_of_work(app.state.session_factory) as session:
            user = (
                await session.exec(
                    sa.select(User).where(sa.column("email") == "victim@example.com")
                )
            ).scalar_one()
            # Failures from one address never lock the account itself.
            assert user.failed_logins == 0
            assert user.locked_until is None


async def _rate_limit_scenario(app: Any, in_process: Callable[..., Any]) -> None:
    async with in_process(app) as http:
        await register(http, "busy@example.com")

        # No request limit per account on login: anybody could spend it and keep the owner out.
        per_account = [await attempt(http, "busy@example.com", PASSWORD) for _ in range(4)]
        assert [r.status_code for r in per_account] == [200, 200, 200, 200]

        # Per address: other accounts from the same client address are throttled too.
        spray = [await attempt(http, f"spray{i}@example.com", "wrong password!") for i in range(6)]
        assert [r.status_code for r in spray] == [401, 401, 401, 401, 429, 429]
        limited = spray[-1]
        assert limited.headers["content-type"].startswith(PROBLEM_JSON)
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["status"] == 429
        # ... but a request from another address (via a trusted proxy) is not.
        other_address = await http.post(
            "/v1/auth/login",
            json={"email": "someone@example.com", "password": "wrong password!"},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
        assert other_address.status_code == 401

        tokens = per_account[0].json()
        refreshes = []
        token = tokens["refresh_token"]
        for _ in range(3):
            response = await http.post(
                "/v1/auth/refresh",
                json={"refresh_token": token},
                headers={"X-Forwarded-For": "203.0.113.10"},
            )
            refreshes.append(response.status_code)
            if response.status_code == 200:
                token = response.json()["refresh_token"]
        assert refreshes == [200, 200, 429]


def _limited_settings(make_settings: Callable[..., Any], **extra: Any) -> Any:
    return make_settings(
        rate_limit_enabled=True,
        login_rate_limit_per_address="8/minute",
        refresh_rate_limit_per_account="2/minute",
        **extra,
    )


async def test_login_and_refresh_are_rate_limited(
    make_settings: Callable[..., Any], in_process: Callable[..., Any]
) -> None:
    await _rate_limit_scenario(create_app(_limited_settings(make_settings)), in_process)


async def test_rate_limits_in_redis(
    make_settings: Callable[..., Any], in_process: Callable[..., Any], redis_url: str
) -> None:
    import uuid

    settings = _limited_settings(
        make_settings, cache_url=redis_url, rate_limit_key_prefix=f"test-{uuid.uuid4().hex}"
    )
    await _rate_limit_scenario(create_app(settings), in_process)


@pytest.mark.parametrize("body", [{"email": "x"}, {"email": "a" * 400, "password": "x"}, []])
async def test_bad_login_bodies_are_422(client: httpx.AsyncClient, body: Any) -> None:
    response = await client.post("/v1/auth/login", json=body)

    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
