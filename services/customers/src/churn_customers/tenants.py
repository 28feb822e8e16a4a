"""Which tenants exist: they live in the auth service, asked over HTTP.

Events posted over HTTP come through the gateway with a verified token, so their tenant is
real. Events consumed from ``customer.events.v1`` carry a ``tenant_id`` the producer wrote: the
events consumer asks this directory first and dead-letters the events of a tenant auth does not
know instead of storing them where nobody can ever see them. The customers service never reads
auth's tables: it calls auth's internal ``GET /v1/auth/tenants/{id}`` (404 for an unknown
tenant), remembering the answers for a while. When auth cannot answer, the lookup raises
:class:`TenantDirectoryUnavailableError` (a ``RetryLaterError``): the consumer keeps the batch
in the broker and tries again, so no legitimate event is dead-lettered because auth was down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Protocol
from urllib.parse import quote

import httpx

from churn_shared.kafka import RetryLaterError
from churn_shared.logging import get_logger

_log = get_logger(__name__)

TENANT_PATH = "/v1/auth/tenants/{tenant_id}"


class TenantDirectoryUnavailableError(RetryLaterError):
    """Auth could not say whether a tenant exists (unreachable, or an unexpected answer)."""


class TenantDirectory(Protocol):
    async def unknown(self, tenant_ids: Collection[str]) -> set[str]:
        """The ids among ``tenant_ids`` that are not tenants; raises
        :class:`TenantDirectoryUnavailableError` when that cannot be told now."""
        ...


class HttpTenantDirectory:
    """A :class:`TenantDirectory` over auth's lookup (``client`` has auth's base URL), with a
    memory: a known tenant is remembered ``known_ttl`` seconds, an unknown one ``unknown_ttl``
    (at most ``max_entries`` answers; the oldest are forgotten first)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        known_ttl: float = 3600.0,
        unknown_ttl: float = 30.0,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl = {True: known_ttl, False: unknown_ttl}
        self._max = max_entries
        self._clock = clock
        #: tenant id -> (exists, when the answer expires); insertion order is age order.
        self._answers: dict[str, tuple[bool, float]] = {}
        #: Lookups sent to auth (the rest were answered from memory).
        self.lookups = 0

    async def unknown(self, tenant_ids: Collection[str]) -> set[str]:
        """The ids among ``tenant_ids`` that are not tenants; raises
        :class:`TenantDirectoryUnavailableError` when auth cannot tell."""
        now = self._clock()
        missing: set[str] = set()
        for tenant_id in set(tenant_ids):
            answer = self._answers.get(tenant_id)
            if answer is None or answer[1] <= now:
                exists = await self._ask(tenant_id)
                self._remember(tenant_id, exists, now)
            else:
                exists = answer[0]
            if not exists:
                missing.add(tenant_id)
        return missing

    def _remember(self, tenant_id: str, exists: bool, now: float) -> None:
        self._answers.pop(tenant_id, None)
        self._answers[tenant_id] = (exists, now + self._ttl[exists])
        while len(self._answers) > self._max:
            del self._answers[next(iter(self._answers))]

    async def _ask(self, tenant_id: str) -> bool:
        self.lookups += 1
        path = TENANT_PATH.format(tenant_id=quote(tenant_id, safe=""))
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            _log.warning("tenant_directory_unreachable", error=str(exc)[:300])
            raise TenantDirectoryUnavailableError(f"auth is unreachable: {exc}") from exc
        if response.status_code == 200:
            return True
        # 404 is "no such tenant"; 422 is an id auth could never have issued.
        if response.status_code in (404, 422):
            return False
        _log.warning("tenant_directory_failed", status=response.status_code)
        raise TenantDirectoryUnavailableError(f"auth answered {response.status_code}")

    async def aclose(self) -> None:
        await self._client.aclose()
