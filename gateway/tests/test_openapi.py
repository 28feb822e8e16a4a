"""The merged OpenAPI document: the pure merge, and the live one served at /openapi.json."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from churn_gateway.exceptions import OpenAPIMergeError
from churn_gateway.openapi import SECURITY_SCHEME, SECURITY_SCHEME_NAME, merge_openapi

PROBLEM = {"type": "object", "properties": {"title": {"type": "string"}}}


def _doc(
    path: str, operation_id: str, *, schema: str = "Thing", body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A service document shaped like FastAPI's (HTTPBearer scheme, a model, Problem)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": operation_id, "version": "1"},
        "paths": {
            path: {
                "post": {
                    "operationId": operation_id,
                    "tags": [operation_id.split("_")[0]],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{schema}"}
                            }
                        }
                    },
                    "responses": {"200": {"description": "OK"}},
                    "security": [{"HTTPBearer": []}],
                }
            }
        },
        "components": {
            "schemas": {
                schema: body or {"type": "object", "properties": {"id": {"type": "string"}}},
                "Problem": PROBLEM,
            },
            "securitySchemes": {"HTTPBearer": {"type": "http", "scheme": "bearer"}},
        },
        "tags": [{"name": operation_id.split("_")[0]}],
    }


def test_paths_and_components_of_all_services_are_merged():
    docs = {
        "customers": _doc("/v1/customers", "customers_create", schema="CustomerCreate"),
        "alerts": _doc("/v1/alert-channels", "alerts_create_channel", schema="ChannelCreate"),
    }
    merged = merge_openapi(docs, title="Platform", version="9.9")
    assert merged["info"] == {"title": "Platform", "version": "9.9"}
    assert set(merged["paths"]) == {"/v1/customers", "/v1/alert-channels"}
    assert {"CustomerCreate", "ChannelCreate", "Problem"} <= set(merged["components"]["schemas"])
    assert merged["components"]["securitySchemes"] == {SECURITY_SCHEME_NAME: SECURITY_SCHEME}
    operation = merged["paths"]["/v1/customers"]["post"]
    assert operation["security"] == [{SECURITY_SCHEME_NAME: []}]
    assert [t["name"] for t in merged["tags"]] == ["alerts", "customers"]


def test_merge_does_not_modify_its_inputs():
    docs = {"customers": _doc("/v1/customers", "customers_create")}
    before = copy.deepcopy(docs)
    merge_openapi(docs, title="t", version="v")
    assert docs == before


def test_protected_operations_get_the_bearer_requirement_even_if_missing():
    doc = _doc("/v1/alerts", "alerts_list")
    del doc["paths"]["/v1/alerts"]["post"]["security"]
    merged = merge_openapi({"alerts": doc}, title="t", version="v")
    assert merged["paths"]["/v1/alerts"]["post"]["security"] == [{SECURITY_SCHEME_NAME: []}]


def test_public_auth_operations_stay_without_security():
    doc = _doc("/v1/auth/login", "auth_login")
    del doc["paths"]["/v1/auth/login"]["post"]["security"]
    merged = merge_openapi({"auth": doc}, title="t", version="v")
    assert "security" not in merged["paths"]["/v1/auth/login"]["post"]


def test_identical_component_schemas_are_shared():
    docs = {
        "customers": _doc("/v1/customers", "customers_create", schema="Page"),
        "alerts": _doc("/v1/alerts", "alerts_create", schema="Page"),
    }
    merged = merge_openapi(docs, title="t", version="v")
    assert "Page" in merged["components"]["schemas"]


def test_a_path_served_by_two_services_is_an_error():
    docs = {
        "customers": _doc("/v1/customers", "customers_create"),
        "alerts": _doc("/v1/customers", "alerts_create"),
    }
    with pytest.raises(OpenAPIMergeError, match=r"/v1/customers.*'alerts'.*'customers'"):
        merge_openapi(docs, title="t", version="v")


def test_two_different_schemas_with_one_name_are_an_error():
    docs = {
        "customers": _doc("/v1/customers", "customers_create", schema="Item"),
        "alerts": _doc(
            "/v1/alerts",
            "alerts_create",
            schema="Item",
            body={"type": "object", "properties": {"kind": {"type": "string"}}},
        ),
    }
    with pytest.raises(OpenAPIMergeError, match=r"components\.schemas\.Item"):
        merge_openapi(docs, title="t", version="v")


def test_a_duplicate_operation_id_is_an_error():
    docs = {
        "customers": _doc("/v1/customers", "shared_create"),
        "alerts": _doc("/v1/alerts", "shared_create"),
    }
    with pytest.raises(OpenAPIMergeError, match="operationId 'shared_create'"):
        merge_openapi(docs, title="t", version="v")


async def test_openapi_json_merges_the_live_upstream_documents(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    services = {f"/v1/{name}-status" for name in ("auth", "customers", "prediction", "alerts")}
    # With the gateway's own operations (the composed dashboard).
    own = {"/v1/dashboard/summary", "/v1/dashboard/trend"}
    assert services | own == set(document["paths"])
    assert SECURITY_SCHEME_NAME in document["components"]["securitySchemes"]
    assert "x-unavailable-services" not in document["info"]


async def test_openapi_json_is_cached(gateway, upstreams):
    async with gateway(upstreams) as client:
        await client.get("/openapi.json")
        await client.get("/openapi.json")
    fetches = [c for c in upstreams.calls if c.url.path == "/openapi.json"]
    assert len(fetches) == 4


async def test_openapi_json_is_refetched_after_a_failure(gateway, upstreams):
    upstreams.down.add("prediction")
    async with gateway(upstreams) as client:
        partial = (await client.get("/openapi.json")).json()
        upstreams.down.clear()
        complete = (await client.get("/openapi.json")).json()
    assert partial["info"]["x-unavailable-services"] == ["prediction"]
    assert "/v1/prediction-status" not in partial["paths"]
    assert "/v1/prediction-status" in complete["paths"]
    assert "x-unavailable-services" not in complete["info"]


async def test_openapi_json_is_503_when_no_upstream_answers(gateway, upstreams):
    upstreams.down.update({"auth", "customers", "prediction", "alerts"})
    async with gateway(upstreams) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_docs_serve_swagger_ui_for_the_merged_document(gateway, upstreams):
    async with gateway(upstreams) as client:
        response = await client.get("/docs")
    assert response.status_code == 200
    assert "swagger-ui" in response.text
    assert "/openapi.json" in response.text


def test_internal_operations_are_left_out():
    from churn_gateway.openapi import merge_openapi

    doc = {
        "openapi": "3.1.0",
        "paths": {
            "/v1/auth/api-keys/verify": {"post": {"operationId": "auth_verify_api_key"}},
            "/v1/auth/login": {"post": {"operationId": "auth_login"}},
        },
    }
    merged = merge_openapi({"auth": doc}, title="t", version="1")
    assert list(merged["paths"]) == ["/v1/auth/login"]


@pytest.mark.parametrize("path", ["/v1/alerts", "/v1/auth/login"])
def test_every_operation_documents_what_the_edge_answers(path):
    doc = _doc(path, "op_one")
    doc["paths"][path]["post"]["responses"]["429"] = {"description": "the service's own"}
    merged = merge_openapi({"alerts": doc}, title="t", version="v")

    responses = merged["paths"][path]["post"]["responses"]
    assert {"200", "429", "502", "503", "504"} <= set(responses)
    assert responses["429"] == {"description": "the service's own"}  # kept when documented
    problem = {"$ref": "#/components/schemas/Problem"}
    assert responses["503"]["content"]["application/problem+json"]["schema"] == problem


def test_the_committed_document_declares_429_and_503_and_no_fastapi_422():
    import json
    from pathlib import Path

    document = json.loads(
        (Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text()
    )
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"429", "503"} <= set(responses), (method, path)
            if "422" in responses:
                assert "application/problem+json" in responses["422"]["content"], (method, path)
    assert "HTTPValidationError" not in json.dumps(document)
