"""The assignee check over auth's users API, with a fake auth (httpx.MockTransport)."""

from __future__ import annotations

import httpx
import pytest

from churn_alerts.exceptions import AssignmentForbiddenError, UserDirectoryUnavailableError
from churn_alerts.users import HttpUserDirectory


def _directory(handler) -> HttpUserDirectory:
    return HttpUserDirectory(
        httpx.AsyncClient(base_url="http://auth.test", transport=httpx.MockTransport(handler))
    )


async def test_walks_the_pages_with_the_callers_token():
    seen: list[tuple[str | None, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.url.params.get("cursor"), request.headers.get("authorization")))
        if request.url.params.get("cursor") is None:
            items = [{"id": "u1", "active": True}]
            return httpx.Response(200, json={"items": items, "next_cursor": "p2"})
        items = [{"id": "u2", "active": True}, {"id": "u3", "active": False}]
        return httpx.Response(200, json={"items": items, "next_cursor": None})

    users = _directory(handler)
    assert await users.is_active_member("u2", "Bearer t") is True
    assert await users.is_active_member("u3", "Bearer t") is False
    assert await users.is_active_member("nobody", "Bearer t") is False
    assert seen[:2] == [(None, "Bearer t"), ("p2", "Bearer t")]


async def test_a_caller_who_may_not_list_users_may_not_assign_others():
    users = _directory(lambda request: httpx.Response(403, json={"title": "Forbidden"}))
    with pytest.raises(AssignmentForbiddenError):
        await users.is_active_member("u1", "Bearer t")


@pytest.mark.parametrize("failure", ["down", "500"])
async def test_fails_closed_when_auth_cannot_answer(failure):
    def handler(request: httpx.Request) -> httpx.Response:
        if failure == "down":
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(500)

    with pytest.raises(UserDirectoryUnavailableError):
        await _directory(handler).is_active_member("u1", "Bearer t")
