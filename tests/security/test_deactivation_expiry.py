"""A deactivated user's access token stops working everywhere once it expires.

The services verify access tokens locally (no call to auth per request), so they learn of a
deactivation only through the token's expiry; refresh and login fail at once (test_sessions).
This module runs its own embedded stack with 30 s access tokens to show the bound end to end.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from churn_cli.launcher import Stack
from testkit import wait_for
from tests.security._helpers import PASSWORD, add_user, register
from tests.security._stack import dump_logs, start_stack

pytestmark = pytest.mark.e2e

ACCESS_TTL_SECONDS = 30
LEEWAY_SECONDS = 5  # churn_shared.security.TokenVerifier's clock-skew allowance


@pytest.fixture(scope="module")
def short_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {"CHURN_AUTH_ACCESS_TOKEN_TTL_SECONDS": str(ACCESS_TTL_SECONDS)}
    running = start_stack(request, tmp_path_factory, "embedded", env)
    failed_before = request.session.testsfailed
    yield running
    running.stop()
    if request.session.testsfailed > failed_before:
        dump_logs(running.config.data_dir)


async def test_deactivated_users_token_dies_at_expiry(short_stack: Any) -> None:
    stack = short_stack
    async with (
        httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client,
        httpx.AsyncClient(base_url=stack.url("customers"), timeout=30) as customers,
    ):
        owner = await register(client, "expiry")
        analyst = await add_user(client, owner, "analyst")
        claims = jwt.decode(analyst.access_token, options={"verify_signature": False})
        assert ACCESS_TTL_SECONDS - 1 <= claims["exp"] - claims["iat"] <= ACCESS_TTL_SECONDS
        off = await client.patch(
            f"/v1/users/{analyst.user_id}", headers=owner.headers, json={"active": False}
        )
        assert off.status_code == 200, off.text
        refresh = await client.post(
            "/v1/auth/refresh", json={"refresh_token": analyst.refresh_token}
        )
        assert refresh.status_code == 401
        login = await client.post(
            "/v1/auth/login", json={"email": analyst.email, "password": PASSWORD}
        )
        assert login.status_code == 401
        assert (await client.get("/v1/users/me", headers=analyst.headers)).status_code == 401

        async def refused() -> bool:
            via_gateway = await client.get("/v1/customers", headers=analyst.headers)
            direct = await customers.get("/v1/customers", headers=analyst.headers)
            return via_gateway.status_code == 401 and direct.status_code == 401

        deadline = claims["exp"] + LEEWAY_SECONDS + 3
        await wait_for(refused, timeout=max(1.0, deadline - time.time()), interval=1.0)
        assert time.time() <= deadline
