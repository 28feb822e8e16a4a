"""HTTP conformance of every service app (what schemathesis and generated clients check):
405 lists every method of the path, a body that is not JSON is 415, 422 is documented as it is
sent, and a trailing slash is a 404 problem rather than a redirect."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Response
from pydantic import BaseModel

from churn_shared.app import make_service_app

PROBLEM_JSON = "application/problem+json"


class Item(BaseModel):
    name: str


def _app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield

    app = make_service_app(
        title="t", service="t", version="1", lifespan=lifespan, readiness={}, max_body_bytes=4096
    )

    @app.get("/v1/items/{item_id}")
    async def read(item_id: str) -> Item:
        return Item(name=item_id)

    @app.patch("/v1/items/{item_id}")
    async def update(item_id: str, item: Item) -> Item:
        return item

    @app.delete("/v1/items/{item_id}", status_code=204)
    async def delete(item_id: str) -> Response:
        return Response(status_code=204)

    @app.post("/v1/items")
    async def create(item: Item) -> Item:
        return item

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_405_allows_every_method_of_the_path():
    async with _client(_app()) as client:
        response = await client.put("/v1/items/a", json={"name": "a"})

    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD", "PATCH", "DELETE"}


async def test_a_body_that_is_not_json_is_415():
    body = json.dumps({"name": "a"})
    async with _client(_app()) as client:
        wrong = await client.post("/v1/items", content=body, headers={"Content-Type": "text/plain"})
        missing = await client.patch("/v1/items/a", content=body)
        right = await client.post(
            "/v1/items", content=body, headers={"Content-Type": "application/json"}
        )
        vendor = await client.post(
            "/v1/items", content=body, headers={"Content-Type": "application/merge-patch+json"}
        )

    assert (wrong.status_code, missing.status_code) == (415, 415)
    assert wrong.headers["content-type"] == PROBLEM_JSON
    assert wrong.json()["type"].endswith("/unsupported-media-type")
    assert wrong.headers["accept-post"] == "application/json"
    assert missing.headers["accept-patch"] == "application/json"
    assert (right.status_code, vendor.status_code) == (200, 200)


async def test_a_json_body_of_the_wrong_shape_is_still_422():
    async with _client(_app()) as client:
        response = await client.post("/v1/items", json={"nom": "a"})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON


def test_422_is_documented_as_the_problem_that_is_sent():
    document = _app().openapi()

    for item in document["paths"].values():
        for operation in item.values():
            if "422" in operation["responses"]:
                assert operation["responses"]["422"]["content"] == {
                    PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "ValidationError" not in document["components"]["schemas"]
    assert "HTTPValidationError" not in json.dumps(document)


async def test_a_trailing_slash_is_a_404_problem_not_a_redirect():
    async with _client(_app()) as client:
        response = await client.get(
            "/v1/items/a/", headers={"X-Forwarded-Proto": "https"}, follow_redirects=False
        )

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "location" not in response.headers
