"""The common app shape: problem+json, body limits, request ids, health and metrics."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from pydantic import BaseModel

from churn_shared.app import make_service_app
from churn_shared.errors import NotFoundError
from churn_shared.middleware import STREAMED_BODIES
from churn_shared.pagination import decode_cursor, encode_cursor


class Item(BaseModel):
    name: str
    size: int


def _app(ready: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield

    async def check(app: FastAPI) -> None:
        if not ready:
            raise RuntimeError("database down")

    app = make_service_app(
        title="t",
        service="t",
        version="1",
        lifespan=lifespan,
        readiness={"database": check},
        max_body_bytes=2048,
    )

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/items/{name}")
    async def get(name: str) -> Item:
        raise NotFoundError(f"No item {name}.")

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_errors_are_problem_json():
    async with _client(_app()) as client:
        missing = await client.get("/items/x")
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.json()["detail"] == "No item x."
        assert missing.json()["request_id"] == missing.headers["x-request-id"]
        malformed = await client.post(
            "/items", content=b"{", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        invalid = await client.post("/items", json={"name": "a", "size": "big"})
        assert invalid.status_code == 422
        assert invalid.json()["errors"][0]["loc"] == ["body", "size"]
        route = await client.get("/nowhere")
        assert route.status_code == 404
        assert route.headers["content-type"] == "application/problem+json"


async def test_oversized_body_is_refused_before_the_handler():
    async with _client(_app()) as client:
        big = await client.post("/items", json={"name": "a" * 5000, "size": 1})
        assert big.status_code == 413
        assert big.headers["content-type"] == "application/problem+json"

        async def stream():
            for _ in range(10):
                yield b"x" * 1000

        streamed = await client.post(
            "/items", content=stream(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413


async def test_a_streamed_upload_path_reaches_the_handler_as_it_arrives():
    """A path listed in ``app.state.streamed_bodies`` is not buffered (the handler sees the
    chunks one by one) and has its own limit; every other path keeps the app's limit."""
    app = _app()
    setattr(app.state, STREAMED_BODIES, {"/upload": 20_000})
    seen: list[int] = []

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        async for chunk in request.stream():
            if chunk:
                seen.append(len(chunk))
        return {"chunks": len(seen)}

    async def stream(n: int):
        for _ in range(n):
            yield b"x" * 1000

    async with _client(app) as client:
        accepted = await client.post("/upload", content=stream(10))
        assert accepted.status_code == 200, accepted.text
        assert seen == [1000] * 10  # ten chunks, not one buffered body of 10,000 bytes
        too_big = await client.post("/upload", content=stream(30))
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == "application/problem+json"
        assert "20000 bytes" in too_big.json()["detail"]
        declared = await client.post("/upload", content=b"x" * 20_001)
        assert declared.status_code == 413
        # Other paths keep the app's own limit of 2,048 bytes.
        other = await client.post("/items", content=stream(3))
        assert other.status_code == 413


async def test_a_streamed_key_ending_in_a_slash_covers_the_paths_below_it():
    app = _app()
    setattr(app.state, STREAMED_BODIES, {"/models/": 5_000})
    seen: list[int] = []

    @app.post("/models/{name}/infer")
    async def infer(request: Request) -> dict[str, int]:
        async for chunk in request.stream():
            if chunk:
                seen.append(len(chunk))
        return {"chunks": len(seen)}

    async def stream(n: int):
        for _ in range(n):
            yield b"x" * 1000

    async with _client(app) as client:
        accepted = await client.post("/models/churn/infer", content=stream(4))
        assert accepted.status_code == 200, accepted.text
        assert seen == [1000] * 4
        too_big = await client.post("/models/churn/infer", content=stream(6))
        assert too_big.status_code == 413
        assert "5000 bytes" in too_big.json()["detail"]


async def test_request_id_is_adopted_or_minted():
    async with _client(_app()) as client:
        adopted = await client.post(
            "/items", json={"name": "a", "size": 1}, headers={"x-request-id": "abc-123-def"}
        )
        assert adopted.headers["x-request-id"] == "abc-123-def"
        minted = await client.post(
            "/items", json={"name": "a", "size": 1}, headers={"x-request-id": "bad id with spaces"}
        )
        assert minted.headers["x-request-id"] != "bad id with spaces"
        assert len(minted.headers["x-request-id"]) == 32


async def test_health_and_metrics():
    async with _client(_app(ready=False)) as client:
        assert (await client.get("/livez")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "database down" in ready.json()["checks"]["database"]
        await client.get("/items/x")
        metrics = (await client.get("/metrics")).text
        assert (
            'http_requests_total{method="GET",route="/items/{name}",service="t",status="404"} 1.0'
            in metrics
        )


def test_cursor_round_trip_and_garbage():
    import pytest

    from churn_shared.errors import BadRequestError

    assert decode_cursor(encode_cursor([0.5, "c-1"]), 2) == [0.5, "c-1"]
    for bad in ("%%%", encode_cursor([1]), "bm90IGpzb24"):
        with pytest.raises(BadRequestError):
            decode_cursor(bad, 2)


async def test_docs_render_from_local_assets_only() -> None:
    """Swagger UI's page names no other host, and every file it loads is served here."""
    import re

    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        urls += re.findall(r"""url: ['"]([^'"]+)['"]""", page.text)
        assert urls
        assert not [u for u in urls if "://" in u or u.startswith("//")], urls
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.content, url
