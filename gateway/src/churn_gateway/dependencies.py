"""FastAPI dependencies of the gateway's routes (typed access to what the lifespan created)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import socketio
from fastapi import Depends, Request

from churn_gateway.authentication import (
    EdgeAuthenticator,
    EdgeCaller,
    check_api_key_scope,
    is_internal_path,
)
from churn_gateway.config import Settings
from churn_gateway.exceptions import RouteNotFoundError
from churn_gateway.openapi import PUBLIC_OPERATIONS, MergedOpenAPI
from churn_gateway.proxy import STREAMED_SCORING, STREAMED_UPLOADS, resolve_upstream
from churn_gateway.rate_limits import EdgeRateLimiter
from churn_gateway.realtime import create_socket_server
from churn_gateway.worker import LiveFeedWorker
from churn_shared.runtime import ProcessState
from churn_shared.security import ApiKeyExchanger, Principal


class GatewayState(ProcessState):
    """``app.state`` of the gateway: what its runtime opens (``churn_gateway.main``)."""

    settings: Settings
    #: Replaces the HTTP transport to the services (tests fake it).
    upstream_transport: httpx.AsyncBaseTransport | None
    sio: socketio.AsyncServer
    http_client: httpx.AsyncClient
    api_key_exchanger: ApiKeyExchanger
    authenticator: EdgeAuthenticator | None
    rate_limiter: EdgeRateLimiter | None
    openapi: MergedOpenAPI
    #: The gateway's own operations' document (the composed dashboard), merged with the rest.
    own_openapi: Callable[[], dict[str, Any]]
    live_feed: LiveFeedWorker | None

    def __init__(
        self, settings: Settings, *, upstream_transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(settings)
        self.upstream_transport = upstream_transport
        #: Paths whose bodies stream through (``churn_shared.middleware.STREAMED_BODIES``).
        self.streamed_bodies = dict.fromkeys(
            STREAMED_UPLOADS, settings.max_upload_bytes
        ) | dict.fromkeys(STREAMED_SCORING, settings.max_body_bytes)
        self.authenticator = None
        self.rate_limiter = None
        self.live_feed = None
        self.sio = create_socket_server(
            lambda: self.authenticator,
            cors_origins=settings.cors_origins,
            cors_credentials=settings.cors_allow_credentials,
        )


# Coroutines, not plain functions: FastAPI runs a plain function dependency in its thread pool,
# a round trip to a worker thread on every proxied request just to read an attribute.
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_http_client(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.http_client
    return client


async def get_merged_openapi(request: Request) -> MergedOpenAPI:
    merged: MergedOpenAPI = request.app.state.openapi
    return merged


SettingsDep = Annotated[Settings, Depends(get_settings)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http_client)]
MergedOpenAPIDep = Annotated[MergedOpenAPI, Depends(get_merged_openapi)]


@dataclass(frozen=True, slots=True)
class ProxyTarget:
    """Where a ``/v1`` request goes, who sent it (``None`` on public auth routes), and the
    ``Authorization`` header to send upstream (``None``: the caller's own, if any)."""

    upstream: str
    base_url: str
    path: str
    principal: Principal | None
    authorization: str | None = None


async def authenticate_edge(full_path: str, request: Request) -> EdgeCaller:
    """Authenticate the caller at the edge (401), check an API key's scopes (403), limit the
    tenant (429)."""
    authenticator: EdgeAuthenticator = request.app.state.authenticator
    caller = await authenticator.authenticate(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    check_api_key_scope(caller, request.method, full_path)
    limiter: EdgeRateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        await limiter.hit_tenant(caller.tenant_id)
    return caller


async def resolve_target(full_path: str, request: Request, settings: Settings) -> ProxyTarget:
    """Resolve the upstream of ``full_path`` (404; internal paths too), then
    :func:`authenticate_edge` unless the operation is public."""
    if is_internal_path(full_path):
        raise RouteNotFoundError(f"No service serves {full_path}.")
    upstream = resolve_upstream(full_path)
    if (request.method, full_path) in PUBLIC_OPERATIONS:
        return ProxyTarget(upstream, settings.upstream_urls()[upstream], full_path, None)
    authenticator: EdgeAuthenticator = request.app.state.authenticator
    caller = await authenticator.authenticate(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    check_api_key_scope(caller, request.method, full_path)
    limiter: EdgeRateLimiter | None = request.app.state.rate_limiter
    if limiter is not None:
        await limiter.hit_tenant(caller.tenant_id)
    return ProxyTarget(
        upstream,
        settings.upstream_urls()[upstream],
        full_path,
        caller.principal,
        caller.upstream_authorization,
    )


async def proxy_target(path: str, request: Request, settings: SettingsDep) -> ProxyTarget:
    """The target of a ``/v1`` request (:func:`resolve_target`)."""
    return await resolve_target(f"/v1/{path}", request, settings)


ProxyTargetDep = Annotated[ProxyTarget, Depends(proxy_target)]


async def edge_caller(request: Request) -> EdgeCaller:
    """The authenticated caller of one of the gateway's own ``/v1`` routes."""
    return await authenticate_edge(request.url.path, request)


EdgeCallerDep = Annotated[EdgeCaller, Depends(edge_caller)]
