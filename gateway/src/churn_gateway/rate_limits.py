"""Edge rate limits (``limits`` library, sliding windows) and the ASGI middleware applying them.

Per client address on every route (stricter on login and refresh), and per tenant once the caller
is authenticated. Counters live in-process (``memory://``) or in Redis (``redis://``), so several
gateway replicas share them; a slow or dead Redis costs at most a short timeout per call until the
circuit breaker opens, and the limits are then counted in-process
(:mod:`churn_shared.ratelimit`).
"""

from __future__ import annotations

from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from starlette.types import ASGIApp, Receive, Scope, Send

from churn_gateway.config import Settings
from churn_gateway.exceptions import RateLimitedError
from churn_shared.clientaddr import client_address, forwarded_chain
from churn_shared.errors import problem_response
from churn_shared.logging import get_logger
from churn_shared.ratelimit import ResilientStorage, WindowCounters, counter_storage

_log = get_logger(__name__)

#: Routes that guess credentials get the stricter per-address limit on top of the general one.
CREDENTIAL_ROUTES = frozenset({("POST", "/v1/auth/login"), ("POST", "/v1/auth/refresh")})
UNLIMITED_PATHS = frozenset({"/livez", "/readyz", "/metrics"})


class EdgeRateLimiter:
    """Counts hits per address and per tenant; raises :class:`RateLimitedError` when over."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self._counters = WindowCounters(storage, settings.rate_limit_key_prefix)
        self.per_address = parse(settings.rate_limit)
        self.per_address_credentials = parse(settings.auth_rate_limit)
        self.per_tenant = parse(settings.tenant_rate_limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeRateLimiter:
        storage = counter_storage(
            settings.cache_url, settings.rate_limit_storage, name="gateway_rate_limits"
        )
        return cls(storage, settings)

    @property
    def degraded(self) -> bool:
        """``True`` while Redis is skipped and the limits are counted in this process only."""
        return isinstance(self.storage, ResilientStorage) and self.storage.degraded

    async def _hit(self, item: RateLimitItem, scope: str, identity: str) -> None:
        retry_after = await self._counters.hit(item, scope, identity)
        if retry_after is not None:
            raise RateLimitedError(
                f"Rate limit of {item} exceeded; retry later.", retry_after=retry_after
            )

    async def hit_address(self, address: str, *, credentials: bool = False) -> None:
        await self._hit(self.per_address, "address", address)
        if credentials:
            await self._hit(self.per_address_credentials, "credentials", address)

    async def hit_tenant(self, tenant_id: str) -> None:
        await self._hit(self.per_tenant, "tenant", tenant_id)

    async def close(self) -> None:
        if isinstance(self.storage, ResilientStorage):
            await self.storage.close()


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
        forwarded_for = [
            value.decode("latin-1")
            for name, value in scope["headers"]
            if name.lower() == b"x-forwarded-for"
        ]
        chain = forwarded_chain(peer[0] if peer else None, forwarded_for, self.trusted)
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
