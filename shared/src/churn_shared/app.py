"""The common shape of every service's FastAPI app: middleware, problem+json, health, metrics."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.datastructures import State
from starlette.requests import Request
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from churn_shared.errors import PROBLEM_JSON, install_problem_handlers
from churn_shared.middleware import (
    BodySizeLimitMiddleware,
    ErrorBoundaryMiddleware,
    MetricsMiddleware,
    RequestContextMiddleware,
)

ReadinessCheck = Callable[[FastAPI], Awaitable[None]]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["type", "title", "status", "detail"],
}


#: Where Swagger UI's own files are served from (``swagger-ui-bundle-v2``): no CDN, so ``/docs``
#: renders on a machine without internet access.
DOCS_ASSETS_PATH = "/docs/assets"


def install_docs(app: FastAPI, *, openapi_url: str, title: str) -> None:
    """Serve Swagger UI at ``/docs`` with its JavaScript and CSS from this process."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url=None,
        )


#: FastAPI's own 422 body, which the services never send (they answer problem+json).
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document_validation_as_problem(schema: dict[str, Any]) -> None:
    """Every operation's 422 is documented as what is sent: ``application/problem+json`` with
    the Problem schema (FastAPI documents its own ``HTTPValidationError``)."""
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for item in schema.get("paths", {}).values():
        for method in _HTTP_METHODS:
            responses = item.get(method, {}).get("responses", {})
            if "422" in responses:
                responses["422"]["content"] = copy.deepcopy(problem)
    schemas = schema.get("components", {}).get("schemas", {})
    text = orjson.dumps({k: v for k, v in schema.items() if k != "components"}).decode()
    remaining = orjson.dumps(
        {k: v for k, v in schemas.items() if k not in _FASTAPI_VALIDATION_SCHEMAS}
    ).decode()
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        ref = f'"#/components/schemas/{name}"'
        if ref not in text and ref not in remaining:
            schemas.pop(name, None)


def make_service_app(
    *,
    title: str,
    service: str,
    version: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    readiness: Mapping[str, ReadinessCheck],
    max_body_bytes: int,
    trust_request_id: bool = True,
    description: str = "",
    state: State | None = None,
) -> FastAPI:
    """A service's app; ``state`` (a typed :class:`starlette.datastructures.State`) becomes
    ``app.state``."""
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    # ``/v1/users/`` is a 404 problem, not a 307 to an absolute URL built from the server's own
    # view of the request (``http://`` behind a TLS-terminating proxy).
    app.router.redirect_slashes = False
    install_docs(app, openapi_url="/openapi.json", title=title)
    if state is not None:
        app.state = state
    registry = CollectorRegistry()
    app.state.metrics_registry = registry
    install_problem_handlers(app)
    # Innermost: retries lock conflicts, renders unhandled errors without dropping the connection.
    app.add_middleware(ErrorBoundaryMiddleware)
    app.add_middleware(MetricsMiddleware, registry=registry, service=service)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(RequestContextMiddleware, trust_incoming=trust_request_id)

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        results: dict[str, str] = {}
        ok = True
        for name, check in readiness.items():
            try:
                await check(request.app)
                results[name] = "ok"
            except Exception as exc:
                ok = False
                results[name] = f"failing: {type(exc).__name__}: {exc}"[:300]
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    original_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original_openapi()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        document_validation_as_problem(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
