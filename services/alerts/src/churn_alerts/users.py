"""Who can be assigned an alert: the tenant's users live in the auth service, asked over HTTP.

The alerts service never reads auth's tables. To check that an assignee is an active user of the
caller's tenant it lists the tenant's users through auth's own ``GET /v1/users``, with the
caller's own token, so auth applies its rules: that list is for admins and owners. Anyone may
take an alert themselves (their token proves who they are, no call is made); assigning it to
someone else therefore needs an admin or owner. When auth cannot answer, assignment fails
closed (503) rather than storing an assignee nobody checked.
"""

from __future__ import annotations

from typing import Protocol

import httpx

from churn_alerts.exceptions import AssignmentForbiddenError, UserDirectoryUnavailableError
from churn_shared.logging import get_logger

_log = get_logger(__name__)
_PAGE = 200
#: At most this many pages are read (40 000 users), so a broken cursor cannot loop forever.
_MAX_PAGES = 200


class UserDirectory(Protocol):
    async def is_active_member(self, user_id: str, authorization: str) -> bool:
        """Whether ``user_id`` is an active user of the tenant of the ``authorization`` token.
        Raises :class:`AssignmentForbiddenError` when that token may not list users and
        :class:`UserDirectoryUnavailableError` when the directory cannot answer."""
        ...


class HttpUserDirectory:
    """:class:`UserDirectory` over auth's users API (``client`` has auth's base URL)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def is_active_member(self, user_id: str, authorization: str) -> bool:
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params: dict[str, str | int] = {"limit": _PAGE}
            if cursor:
                params["cursor"] = cursor
            try:
                response = await self._client.get(
                    "/v1/users", params=params, headers={"Authorization": authorization}
                )
            except httpx.HTTPError as exc:
                _log.warning("user_directory_unreachable", error=str(exc)[:300])
                raise UserDirectoryUnavailableError() from exc
            if response.status_code == 403:
                raise AssignmentForbiddenError()
            if response.status_code != 200:
                _log.warning("user_directory_failed", status=response.status_code)
                raise UserDirectoryUnavailableError()
            page = response.json()
            for user in page.get("items", []):
                if user.get("id") == user_id:
                    return bool(user.get("active", False))
            cursor = page.get("next_cursor")
            if not cursor:
                return False
        return False

    async def aclose(self) -> None:
        await self._client.aclose()
