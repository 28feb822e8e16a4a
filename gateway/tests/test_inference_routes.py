"""The inference protocols' paths at the edge: routed to prediction, probes public, the rest
authenticated (API keys by their ``predictions`` scope), errors in each protocol's form."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from churn_gateway.authentication import api_key_allows
from churn_gateway.proxy import resolve_upstream
from churn_shared.security import Principal

from .test_api_keys import FakeAuth


def inference_app(seen: list[dict[str, Any]]) -> FastAPI:
    """A prediction upstream that records inference requests and answers a binary response."""
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def record(path: str, request: Request) -> Response:
        seen.append(
            {
                "path": request.url.path,
                "headers": dict(request.headers),
                "body": await request.body(),
            }
        )
        return Response(
            b'{"outputs":[]}\x00\x01',
            media_type="application/octet-stream",
            headers={"Inference-Header-Content-Length": "14"},
        )

    return app


@pytest.fixture
def recorded(upstreams: Any, token_signer: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    upstreams.transports["prediction.test"] = httpx.ASGITransport(app=inference_app(seen))
    auth = FakeAuth(token_signer)
    upstreams.transports["auth.test"] = httpx.ASGITransport(app=auth.app)
    return seen


@pytest.mark.parametrize(
    "path",
    [
        "/v2",
        "/v2/health/ready",
        "/v2/models/churn/infer",
        "/invocations",
        "/ping",
        "/health",
        "/version",
    ],
)
def test_inference_paths_go_to_prediction(path: str) -> None:
    assert resolve_upstream(path) == "prediction"


def test_the_predictions_scope_covers_the_inference_paths() -> None:
    key = Principal("apikey:1", "t", "analyst", scopes=frozenset({"predictions"}))
    events = Principal("apikey:2", "t", "analyst", scopes=frozenset({"events:write"}))
    for method, path in (
        ("POST", "/v2/models/churn/infer"),
        ("GET", "/v2"),
        ("POST", "/invocations"),
    ):
        assert api_key_allows(key, method, path)
        assert not api_key_allows(events, method, path)


async def test_probes_need_no_credentials(gateway, upstreams, recorded) -> None:
    async with gateway(upstreams) as client:
        for path in ("/v2/health/live", "/v2/health/ready", "/ping", "/health"):
            response = await client.get(path)
            assert response.status_code == 200, (path, response.text)
    assert [r["path"] for r in recorded] == [
        "/v2/health/live",
        "/v2/health/ready",
        "/ping",
        "/health",
    ]


async def test_binary_inference_is_forwarded_byte_for_byte_with_the_keys_token(
    gateway, upstreams, recorded
) -> None:
    body = b'{"inputs":[]}' + bytes(range(16))
    async with gateway(upstreams) as client:
        response = await client.post(
            "/v2/models/churn/infer",
            content=body,
            headers={"X-API-Key": "ck_predict", "Inference-Header-Content-Length": "13"},
        )
    assert response.status_code == 200
    assert response.headers["inference-header-content-length"] == "14"
    assert response.content == b'{"outputs":[]}\x00\x01'
    [seen] = recorded
    assert seen["body"] == body
    assert seen["headers"]["inference-header-content-length"] == "13"
    assert seen["headers"]["authorization"].startswith("Bearer ey")
    assert "x-api-key" not in seen["headers"]


async def test_edge_errors_take_each_protocols_form(gateway, upstreams, recorded) -> None:
    async with gateway(upstreams) as client:
        anonymous = await client.post("/v2/models/churn/infer", content=b"{}")
        assert anonymous.status_code == 401
        assert set(anonymous.json()) == {"error"}
        wrong_scope = await client.post(
            "/v2/models/churn/infer", content=b"{}", headers={"X-API-Key": "ck_events"}
        )
        assert wrong_scope.status_code == 403
        assert "scopes" in wrong_scope.json()["error"]
        mlflow = await client.post(
            "/invocations", content=b"{}", headers={"X-API-Key": "ck_events"}
        )
        assert mlflow.status_code == 403
        assert mlflow.json()["error_code"] == "PERMISSION_DENIED"
        # A model name with a line break matches no route: still the protocol's 404, as
        # documented, not a problem document.
        unmatched = await client.get("/v2/models/a%0Ab/ready", headers={"X-API-Key": "ck_predict"})
        assert unmatched.status_code == 404
        assert unmatched.headers["content-type"] == "application/json"
        assert set(unmatched.json()) == {"error"}
        elsewhere = await client.get("/v1/nowhere%0A/x", headers={"X-API-Key": "ck_predict"})
        assert elsewhere.headers["content-type"] == "application/problem+json"
    assert recorded == []
