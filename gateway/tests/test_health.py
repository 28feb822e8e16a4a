"""Health, readiness and the app's shape."""

from __future__ import annotations

from fastapi import FastAPI

from churn_gateway.main import app_from_env, create_app
from testkit import free_port


async def test_ready_when_the_jwks_answers(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"jwks": "ok"}


async def test_not_ready_when_the_jwks_does_not_answer(gateway, upstreams):
    upstreams.down.add("auth")
    async with gateway(upstreams) as client:
        response = await client.get("/readyz")
        live = await client.get("/livez")
    assert response.status_code == 503
    assert response.json()["checks"]["jwks"].startswith("failing")
    assert live.status_code == 200


async def test_without_a_broker_the_api_works_but_is_not_ready(gateway, upstreams, bearer):
    broker = f"127.0.0.1:{free_port()}"
    async with gateway(upstreams, run_workers=True, kafka_bootstrap_servers=broker) as client:
        ready = await client.get("/readyz")
        proxied = await client.get("/v1/alerts", headers=bearer())
    assert ready.status_code == 503
    assert ready.json()["checks"]["live_feed"].startswith("failing")
    assert proxied.status_code == 200


def test_create_app_returns_fastapi_with_the_socket_io_mount():
    app = create_app()
    assert isinstance(app, FastAPI)
    paths = {getattr(route, "path", None) for route in app.routes}
    assert "/socket.io" in paths


def test_app_from_env_reads_the_gateway_prefix(monkeypatch):
    monkeypatch.setenv("CHURN_GATEWAY_CUSTOMERS_URL", "http://customers.internal:9000")
    monkeypatch.setenv("CHURN_GATEWAY_RATE_LIMIT", "5/second")
    app = app_from_env()
    assert app.state.settings.customers_url == "http://customers.internal:9000"
    assert app.state.settings.rate_limit == "5/second"


async def test_cors_preflight_is_answered_for_allowed_origins(gateway, upstreams):
    async with gateway(upstreams, cors_origins=["https://app.example"]) as client:
        response = await client.options(
            "/v1/customers",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert upstreams.calls_to("customers") == []
