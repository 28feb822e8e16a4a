"""The gateway app: ``create_app(settings)`` builds it, the lifespan owns its resources.

Run it with ``uvicorn --factory churn_gateway.main:app_from_env --port 8000``; the FastAPI app
serves the REST proxy and, mounted at ``/socket.io/``, the Socket.IO live feed.
"""

from __future__ import annotations

import inspect
from contextlib import AsyncExitStack

import httpx
import socketio
from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.responses import Response

from churn_gateway.api.dashboard import dashboard_router
from churn_gateway.api.routes import is_protocol_path, protocol_error, router
from churn_gateway.authentication import EdgeAuthenticator, pooled_jwks_source
from churn_gateway.config import Settings
from churn_gateway.console import install_console
from churn_gateway.cors import GatewayCORSMiddleware
from churn_gateway.dependencies import GatewayState
from churn_gateway.events.handlers import LiveFeedHandler
from churn_gateway.exceptions import MethodNotAllowedError
from churn_gateway.openapi import MergedOpenAPI
from churn_gateway.rate_limits import ClientAddressMiddleware, EdgeRateLimiter
from churn_gateway.realtime import SOCKETIO_MOUNT_PATH
from churn_gateway.worker import LiveFeedWorker
from churn_shared.errors import NotFoundError, ProblemError, UnauthorizedError, problem_response
from churn_shared.http import service_client
from churn_shared.kafka.metrics import PipelineMetrics
from churn_shared.logging import get_logger
from churn_shared.middleware import EDGE_ERRORS, RequestContextMiddleware
from churn_shared.runtime import ServiceRuntime, package_version
from churn_shared.security import API_KEY_VERIFY_PATH, ApiKeyExchanger, TokenVerifier

_log = get_logger(__name__)

API_TITLE = "Churn early-warning platform"
#: FastAPI's own document is replaced by the merged one; /docs (shared) shows the merged one.
_FRAMEWORK_DOC_PATHS = frozenset({"/openapi.json"})


async def _open(state: GatewayState, stack: AsyncExitStack) -> None:
    """The upstream HTTP pool, token checks, rate limits, the merged OpenAPI document and,
    when ``run_workers``, the live-feed consumer."""
    settings = state.settings
    client = service_client(
        timeout=settings.upstream_timeout_seconds, transport=state.upstream_transport
    )
    stack.push_async_callback(client.aclose)
    if not hasattr(state, "token_verifier"):
        state.token_verifier = TokenVerifier(
            pooled_jwks_source(client, settings.jwks_url),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
        )
    state.http_client = client
    state.api_key_exchanger = ApiKeyExchanger(
        client,
        settings.upstream_urls()["auth"] + API_KEY_VERIFY_PATH,
        state.token_verifier,
        ttl_seconds=settings.api_key_cache_seconds,
        failure_ttl_seconds=settings.api_key_failure_cache_seconds,
    )
    state.authenticator = EdgeAuthenticator(
        state.token_verifier, api_key_verifier=state.api_key_exchanger.exchange
    )
    stack.callback(setattr, state, "authenticator", None)
    if settings.rate_limit_enabled:
        limiter = EdgeRateLimiter.from_settings(settings)
        state.rate_limiter = limiter
        stack.push_async_callback(limiter.close)
        stack.callback(setattr, state, "rate_limiter", None)
    state.openapi = MergedOpenAPI(
        client,
        settings.upstream_urls(),
        title=API_TITLE,
        version=package_version("churn-gateway"),
        ttl_seconds=settings.openapi_cache_seconds,
        own_document=state.own_openapi,
    )
    if settings.run_workers:
        metrics = (
            PipelineMetrics(state.metrics_registry, service=settings.service_name)
            if state.metrics_registry is not None
            else None
        )
        worker = LiveFeedWorker(settings, LiveFeedHandler(state.sio), metrics=metrics)
        worker.start()
        stack.push_async_callback(worker.stop)
        state.live_feed = worker
    _log.info("gateway_started", upstreams=settings.upstream_urls())


async def _jwks_ready(state: GatewayState) -> None:
    response = await state.http_client.get(state.settings.jwks_url, timeout=3.0)
    response.raise_for_status()
    if not response.json().get("keys"):
        raise RuntimeError("the JWKS holds no keys")


async def _live_feed_ready(state: GatewayState) -> None:
    if state.live_feed is None or not state.live_feed.assigned:
        raise RuntimeError("the live-feed consumer has no partitions assigned yet")


#: The gateway's process: no database and no producer of its own. Redis is not a readiness
#: check: the rate limits fall back to in-process counters while it is slow or down, so an
#: outage must not pull every replica.
RUNTIME = ServiceRuntime(
    client_id="churn-gateway",
    setup=_open,
    checks={"jwks": _jwks_ready},
    worker_checks={"live_feed": _live_feed_ready},
    # Its verifier fetches the JWKS through the upstream pool (``_open``).
    verify_tokens=False,
)


def _install_header_problem_handlers(app: FastAPI) -> None:
    """401 carries ``WWW-Authenticate`` (429's ``Retry-After`` is the shared handler's)."""

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

    app.add_exception_handler(UnauthorizedError, on_unauthorized)


def _install_protocol_not_found(app: FastAPI) -> None:
    """A path under an inference protocol that no route matches (a model name with a line
    break: the ``path`` convertor stops at one) is a 404 in that protocol's error form, as the
    documented 404 of every protocol operation is; elsewhere the shared problem handler."""
    shared = app.exception_handlers[StarletteHTTPException]

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        if exc.status_code == 404 and is_protocol_path(path):
            return protocol_error(path, NotFoundError("No such resource in this protocol."))
        response = shared(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, on_http)


def _protocol_edge_error(path: str, exc: ProblemError) -> Response | None:
    return protocol_error(path, exc) if is_protocol_path(path) else None


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
    state = GatewayState(settings, upstream_transport=upstream_transport)
    # A body over the limit on an inference protocol's path: in that protocol's error form.
    setattr(state, EDGE_ERRORS, _protocol_edge_error)
    app = RUNTIME.create_app(
        state,
        title=API_TITLE,
        description="The public entry of the churn platform: /v1 REST and a Socket.IO feed.",
        routers=(),
        token_verifier=token_verifier,
        trust_request_id=False,
    )
    # The gateway serves the merged document of the services, not FastAPI's own one.
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if getattr(route, "path", None) not in _FRAMEWORK_DOC_PATHS
    ]
    _install_header_problem_handlers(app)
    _install_protocol_not_found(app)
    _insert_inside_request_context(app, Middleware(ClientAddressMiddleware, settings=settings))
    # Outermost: preflights are answered before rate limits, body limits and authentication.
    app.add_middleware(GatewayCORSMiddleware, settings=settings)
    # The gateway's own /v1 operations before the proxy's catch-all.
    app.include_router(dashboard_router)
    _refuse_other_methods(app, dashboard_router)
    app.include_router(router)
    state.own_openapi = app.openapi
    install_console(app)
    app.mount(SOCKETIO_MOUNT_PATH, socketio.ASGIApp(state.sio, socketio_path=None))
    return app


#: The methods the proxy's catch-all takes that a gateway-own path may not serve.
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _refuse_other_methods(app: FastAPI, own: APIRouter) -> None:
    """Answer 405 with ``Allow`` for the methods a path of the gateway's own operations does
    not serve, as every service does; without this they fall through to the proxy's catch-all
    and answer 404. Added after ``own`` and before the catch-all. (FastAPI serves a GET route
    for GET only, so HEAD is refused too.)"""
    served: dict[str, set[str]] = {}
    for route in own.routes:
        if isinstance(route, APIRoute) and route.methods:
            served.setdefault(route.path, set()).update(route.methods)
    for path, methods in served.items():
        allow = ", ".join(sorted(methods))

        async def refuse(request: Request, allow: str = allow) -> Response:
            raise MethodNotAllowedError(
                f"{request.method} is not allowed on {request.url.path}.",
                headers={"Allow": allow},
            )

        others = [m for m in _METHODS if m not in methods]
        app.add_api_route(path, refuse, methods=others, include_in_schema=False)


def app_from_env() -> FastAPI:
    """Entry point for ``uvicorn --factory churn_gateway.main:app_from_env``."""
    return create_app(Settings())
