"""Outbound HTTP between services: one pooled client that forwards the current request id."""

from __future__ import annotations

import httpx

from churn_shared.logging import request_id_var

#: How long an idle pooled connection is reused. It must stay below the idle timeout of every
#: server the pool talks to (uvicorn closes idle keep-alive connections after
#: ``timeout_keep_alive``, 5 s by default): with equal timeouts the server closes a connection
#: just as the client sends a request on it, and that request fails.
KEEPALIVE_EXPIRY_SECONDS = 2.0


async def _propagate_request_id(request: httpx.Request) -> None:
    rid = request_id_var.get()
    if rid and "x-request-id" not in request.headers:
        request.headers["x-request-id"] = rid


def service_client(
    base_url: str = "", *, timeout: float = 10.0, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout,
        transport=transport,
        event_hooks={"request": [_propagate_request_id]},
        limits=httpx.Limits(
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        ),
    )
