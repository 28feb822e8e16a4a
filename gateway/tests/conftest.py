"""Fake upstream services (real small FastAPI apps behind one routing transport) and gateways."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from churn_gateway.config import Settings
from churn_gateway.main import create_app

UPSTREAMS = ("auth", "customers", "prediction", "alerts")
JWKS_URL = "http://auth.test/v1/auth/.well-known/jwks.json"


def echo_app(name: str, jwks: dict[str, Any]) -> FastAPI:
    """An upstream that answers every /v1 request with what it received."""
    app = FastAPI(title=name)

    @app.get("/v1/auth/.well-known/jwks.json", include_in_schema=False)
    async def jwks_document() -> dict[str, Any]:
        return jwks

    @app.get(f"/v1/{name}-status", operation_id=f"{name}_status", tags=[name])
    async def status() -> dict[str, str]:
        return {"service": name}

    @app.api_route(
        "/v1/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        include_in_schema=False,
    )
    async def echo(path: str, request: Request) -> JSONResponse:
        body = await request.body()
        status_code = int(request.query_params.get("echo_status", "200"))
        return JSONResponse(
            {
                "service": name,
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.scope["query_string"].decode(),
                "headers": dict(request.headers),
                "body": body.decode(),
            },
            status_code=status_code,
            headers={"x-upstream": name, "x-request-id": "upstream-made-this"},
        )

    return app


class UpstreamRouter(httpx.AsyncBaseTransport):
    """Sends each request to the fake app named by its host (``alerts.test`` …), recording it."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self.transports = {
            f"{name}.test": httpx.ASGITransport(app=app) for name, app in apps.items()
        }
        self.calls: list[httpx.Request] = []
        self.down: set[str] = set()

    def calls_to(self, service: str, *, excluding_jwks: bool = True) -> list[httpx.Request]:
        return [
            c
            for c in self.calls
            if c.url.host == f"{service}.test"
            and not (excluding_jwks and c.url.path.endswith("jwks.json"))
        ]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        host = request.url.host.removesuffix(".test")
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.transports[request.url.host].handle_async_request(request)


@pytest.fixture
def service_name() -> str:
    return "gateway"


@pytest.fixture
def upstreams(token_signer: Any) -> UpstreamRouter:
    return UpstreamRouter({name: echo_app(name, token_signer.jwks()) for name in UPSTREAMS})


def gateway_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "auth_url": "http://auth.test",
        "customers_url": "http://customers.test",
        "prediction_url": "http://prediction.test",
        "alerts_url": "http://alerts.test",
        "jwks_url": JWKS_URL,
        "run_workers": False,
        "log_json": False,
        "rate_limit": "10000/minute",
        "auth_rate_limit": "10000/minute",
        "tenant_rate_limit": "10000/minute",
        "rate_limit_key_prefix": f"test-{uuid.uuid4().hex}",
        "cache_url": "memory://",
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_gateway(
    transport: httpx.AsyncBaseTransport,
    *,
    client_address: tuple[str, int] = ("203.0.113.7", 50000),
    token_verifier: Any = None,
    **overrides: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway with its lifespan running, and a client calling it from ``client_address``."""
    from asgi_lifespan import LifespanManager

    app = create_app(
        gateway_settings(**overrides), token_verifier=token_verifier, upstream_transport=transport
    )
    async with LifespanManager(app, startup_timeout=30) as manager:
        asgi = httpx.ASGITransport(app=manager.app, client=client_address)
        async with httpx.AsyncClient(transport=asgi, base_url="http://gateway.test") as client:
            yield client


@pytest.fixture
def gateway() -> Callable[..., Any]:
    return running_gateway


@pytest.fixture
def bearer(token_signer: Any) -> Callable[..., dict[str, str]]:
    def make(tenant_id: str = "tenant-a", **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_signer.issue(tenant_id, **claims)}"}

    return make
