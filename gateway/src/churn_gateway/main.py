"""The gateway app: ``create_app(settings)`` builds it, the lifespan owns its resources.

Run it with ``uvicorn --factory churn_gateway.main:app_from_env --port 8000``; the FastAPI app
serves the REST proxy and, mounted at ``/socket.io/``, the Socket.IO live feed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import socketio
from fastapi import FastAPI, Request
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from churn_gateway import __version__
from churn_gateway.api.routes import router
from churn_gateway.authentication import EdgeAuthenticator, pooled_jwks_source
from churn_gateway.config import Settings
from churn_gateway.events.handlers import LiveFeedHandler
from churn_gateway.exceptions import RateLimitedError
from churn_gateway.openapi import MergedOpenAPI
from churn_gateway.rate_limits import ClientAddressMiddleware, EdgeRateLimiter
from churn_gateway.realtime import SOCKETIO_MOUNT_PATH, create_socket_server
from churn_gateway.worker import LiveFeedWorker
from churn_shared.app import ReadinessCheck, make_service_app
from churn_shared.errors import UnauthorizedError, problem_response
from churn_shared.http import service_client
from churn_shared.logging import configure_logging, get_logger
from churn_shared.middleware import RequestContextMiddleware
from churn_shared.security import API_KEY_VERIFY_PATH, ApiKeyExchanger, TokenVerifier

_log = get_logger(__name__)

API_TITLE = "Churn early-warning platform"
_FRAMEWORK_DOC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


async def _jwks_ready(app: FastAPI) -> None:
    settings: Settings = app.state.settings
    client: httpx.AsyncClient = app.state.http_client
    response = await client.get(settings.jwks_url, timeout=3.0)
    response.raise_for_status()
    if not response.json().get("keys"):
        raise RuntimeError("the JWKS holds no keys")


async def _live_feed_ready(app: FastAPI) -> None:
    worker: LiveFeedWorker | None = app.state.live_feed
    if worker is None or not worker.assigned:
        raise RuntimeError("the live-feed consumer has no partitions assigned yet")


def _readiness(settings: Settings) -> dict[str, ReadinessCheck]:
    """What the gateway cannot serve without. Redis is not in it: the rate limits fall back to
    in-process counters while it is slow or down, so an outage must not pull every replica."""
    checks: dict[str, ReadinessCheck] = {"jwks": _jwks_ready}
    if settings.run_workers:
        checks["live_feed"] = _live_feed_ready
    return checks


def _install_header_problem_handlers(app: FastAPI) -> None:
    """401 carries ``WWW-Authenticate``, 429 carries ``Retry-After``."""

    async def on_unauthorized(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, UnauthorizedError)
        challenge = "Bearer"
        if request.headers.get("authorization"):
            challenge = 'Bearer error="invalid_token"'
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            exc.type_slug,
            request.url.path,
            headers={"WWW-Authenticate": challenge},
            **exc.extra,
        )

    async def on_rate_limited(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimitedError)
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            exc.type_slug,
            request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    app.add_exception_handler(UnauthorizedError, on_unauthorized)
    app.add_exception_handler(RateLimitedError, on_rate_limited)


def _insert_inside_request_context(app: FastAPI, middleware: Middleware) -> None:
    """Place ``middleware`` right inside the request-id middleware (so its answers carry the id)
    and before the body-size limit (so a limited client's body is never read)."""
    for index, existing in enumerate(app.user_middleware):
        if getattr(existing, "cls", None) is RequestContextMiddleware:
            app.user_middleware.insert(index + 1, middleware)
            return
    app.user_middleware.insert(0, middleware)


def create_app(
    settings: Settings | None = None,
    *,
    token_verifier: TokenVerifier | None = None,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the gateway. ``token_verifier`` and ``upstream_transport`` are for tests."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        client = service_client(
            timeout=settings.upstream_timeout_seconds, transport=upstream_transport
        )
        verifier = token_verifier or TokenVerifier(
            pooled_jwks_source(client, settings.jwks_url),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
        )
        app.state.http_client = client
        app.state.token_verifier = verifier
        app.state.api_key_exchanger = ApiKeyExchanger(
            client,
            settings.upstream_urls()["auth"] + API_KEY_VERIFY_PATH,
            verifier,
            ttl_seconds=settings.api_key_cache_seconds,
            failure_ttl_seconds=settings.api_key_failure_cache_seconds,
        )
        app.state.authenticator = EdgeAuthenticator(
            verifier, api_key_verifier=app.state.api_key_exchanger.exchange
        )
        app.state.rate_limiter = (
            EdgeRateLimiter.from_settings(settings) if settings.rate_limit_enabled else None
        )
        app.state.openapi = MergedOpenAPI(
            client,
            settings.upstream_urls(),
            title=API_TITLE,
            version=__version__,
            ttl_seconds=settings.openapi_cache_seconds,
        )
        worker: LiveFeedWorker | None = None
        if settings.run_workers:
            worker = LiveFeedWorker(settings, LiveFeedHandler(sio))
            worker.start()
        app.state.live_feed = worker
        _log.info("gateway_started", upstreams=settings.upstream_urls())
        try:
            yield
        finally:
            if worker is not None:
                await worker.stop()
            app.state.authenticator = None
            limiter: EdgeRateLimiter | None = app.state.rate_limiter
            app.state.rate_limiter = None
            if limiter is not None:
                await limiter.close()
            await client.aclose()

    app = make_service_app(
        title=API_TITLE,
        service="gateway",
        version=__version__,
        lifespan=lifespan,
        readiness=_readiness(settings),
        max_body_bytes=settings.max_body_bytes,
        trust_request_id=False,
        description="The public entry of the churn platform: /v1 REST and a Socket.IO feed.",
    )
    app.state.settings = settings
    app.state.authenticator = None
    app.state.rate_limiter = None
    app.state.live_feed = None
    # The gateway serves the merged document of the services, not FastAPI's own one.
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if getattr(route, "path", None) not in _FRAMEWORK_DOC_PATHS
    ]
    _install_header_problem_handlers(app)
    _insert_inside_request_context(app, Middleware(ClientAddressMiddleware, settings=settings))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After", "ETag", "Location"],
            max_age=600,
        )
    app.include_router(router)
    sio = create_socket_server(lambda: app.state.authenticator, cors_origins=settings.cors_origins)
    app.state.sio = sio
    app.mount(SOCKETIO_MOUNT_PATH, socketio.ASGIApp(sio, socketio_path=None))
    return app


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory churn_gateway.main:app_from_env``."""
    return create_app(Settings())
