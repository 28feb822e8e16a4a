"""Edge rate limits (``limits`` library, async strategies) and the ASGI middleware applying them.

Per client address on every route (stricter on login and refresh), and per tenant once the caller
is authenticated. Counters live in-process (``memory://``) or in Redis (``redis://``), so several
gateway replicas share them.
"""

from __future__ import annotations

import math
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from churn_gateway.config import Settings
from churn_gateway.exceptions import RateLimitedError
from churn_gateway.proxy import client_address, forwarded_chain
from churn_shared.errors import problem_response
from churn_shared.logging import get_logger

_log = get_logger(__name__)

#: Routes that guess credentials get the stricter per-address limit on top of the general one.
CREDENTIAL_ROUTES = frozenset({("POST", "/v1/auth/login"), ("POST", "/v1/auth/refresh")})
UNLIMITED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


def storage_from_url(url: str) -> Storage:
    """``memory://`` → in-process counters; ``redis://``/``rediss://`` → shared Redis counters."""
    if url.startswith("memory://"):
        return MemoryStorage()
    if url.startswith(("redis://", "rediss://")):
        return RedisStorage(f"async+{url}", implementation="redispy")
    raise ValueError(f"unsupported cache URL for rate limits: {url!r}")


class EdgeRateLimiter:
    """Counts hits per address and per tenant; raises :class:`RateLimitedError` when over."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._prefix = settings.rate_limit_key_prefix
        self.per_address = parse(settings.rate_limit)
        self.per_address_credentials = parse(settings.auth_rate_limit)
        self.per_tenant = parse(settings.tenant_rate_limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeRateLimiter:
        return cls(storage_from_url(settings.cache_url), settings)

    async def _hit(self, item: RateLimitItem, scope: str, identity: str) -> None:
        try:
            allowed = await self._strategy.hit(item, self._prefix, scope, identity)
        except Exception as exc:
            # Fail open: a broken counter store must not take the whole API down.
            _log.warning("rate_limit_storage_failed", error=repr(exc))
            return
        if allowed:
            return
        try:
            stats = await self._strategy.get_window_stats(item, self._prefix, scope, identity)
            retry_after = math.ceil(stats.reset_time - time.time())
        except Exception:
            retry_after = item.get_expiry()
        raise RateLimitedError(
            f"Rate limit of {item} exceeded; retry later.", retry_after=retry_after
        )

    async def hit_address(self, address: str, *, credentials: bool = False) -> None:
        await self._hit(self.per_address, "address", address)
        if credentials:
            await self._hit(self.per_address_credentials, "credentials", address)

    async def hit_tenant(self, tenant_id: str) -> None:
        await self._hit(self.per_tenant, "tenant", tenant_id)

    async def check(self) -> bool:
        return bool(await self.storage.check())


class ClientAddressMiddleware:
    """Works out the client's address (behind trusted proxies) and limits it per address.

    Stores ``client_address`` and ``forwarded_for`` in the scope state for the proxy, and refuses
    HTTP requests (429 problem+json with ``Retry-After``) and WebSocket handshakes over the limit.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.trusted = settings.trusted_proxy_networks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        chain = forwarded_chain(peer[0] if peer else None, headers, self.trusted)
        address = client_address(chain, self.trusted)
        state: dict[str, Any] = scope.setdefault("state", {})
        state["client_address"] = address
        state["forwarded_for"] = chain
        limiter: EdgeRateLimiter | None = getattr(scope["app"].state, "rate_limiter", None)
        path = scope.get("path", "")
        if limiter is None or path in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        credentials = (scope.get("method"), path) in CREDENTIAL_ROUTES
        try:
            await limiter.hit_address(address, credentials=credentials)
        except RateLimitedError as exc:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})
                return
            response = problem_response(
                exc.status, exc.title, exc.detail, exc.type_slug, path, headers=exc.headers
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
