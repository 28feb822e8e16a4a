"""The HTTP API against a real database (SQLite, and MariaDB when configured) and broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from churn_prediction.main import create_app
from churn_prediction.scoring.scorer import BoosterScorer, FeatureColumns
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES

PROBLEM = "application/problem+json"


def auth(token_signer: Any, tenant_id: str, role: str = "analyst") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_signer.issue(tenant_id, role=role)}"}


def served_model(app: Any, tenant_id: str = "any") -> BoosterScorer:
    model: BoosterScorer = app.state.serving_models.for_tenant(tenant_id).model
    return model


def rows_of(matrix: np.ndarray) -> list[dict[str, float | None]]:
    return [
        {
            name: (None if np.isnan(value) else float(value))
            for name, value in zip(FEATURE_NAMES, row, strict=True)
        }
        for row in matrix
    ]


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def test_lifespan_trains_and_registers_the_default_model(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "model": "ok"}
        current = await client.get("/v1/models/current", headers=auth(token_signer, tenant))
        assert current.status_code == 200
        body = current.json()
        assert body["version"] == "default-1"
        assert body["features"] == list(FEATURE_NAMES)
        assert body["is_default"] is True
        assert body["metrics"]["roc_auc"] >= 0.8
        assert body["metrics"]["n_rows"] == 6000
        assert 0 < body["metrics"]["positive_rate"] < 1
        listed = await client.get("/v1/models", headers=auth(token_signer, tenant))
        assert listed.status_code == 200
        [item] = listed.json()["items"]
        assert item["version"] == "default-1"
        assert item["aliases"] == ["champion"]
        assert item["tenant_id"] is None
        assert "artifact" not in item
        first_created = body["created_at"]

    # A restart loads the registered model instead of training another one.
    again = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(again) as client:
        current = await client.get("/v1/models/current", headers=auth(token_signer, tenant))
        assert current.json()["created_at"] == first_created
        listed = await client.get("/v1/models", headers=auth(token_signer, tenant))
        assert len(listed.json()["items"]) == 1


async def test_routes_require_a_valid_token(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        for method, path in (
            ("GET", "/v1/models/current"),
            ("GET", "/v1/models"),
            ("POST", "/v1/predictions"),
            ("POST", "/v1/predictions/batch"),
        ):
            response = await client.request(method, path, json={})
            assert response.status_code == 401, path
            assert response.headers["content-type"].startswith(PROBLEM)


async def test_batch_predictions_equal_the_in_process_booster_in_both_forms(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    matrix = simulate_customers(300, seed=21).features
    matrix[::7, 3] = np.nan
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        booster = served_model(app).booster
        expected = booster.predict(matrix)
        headers = auth(token_signer, tenant)

        by_rows = await client.post(
            "/v1/predictions/batch", headers=headers, json={"rows": rows_of(matrix)}
        )
        columns = {
            name: [None if np.isnan(v) else float(v) for v in matrix[:, i]]
            for i, name in enumerate(FEATURE_NAMES)
        }
        by_columns = await client.post(
            "/v1/predictions/batch", headers=headers, json={"columns": columns}
        )
        for response in (by_rows, by_columns):
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_version"] == "default-1"
            got = np.array([p["churn_probability"] for p in body["predictions"]])
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
            levels = [p["risk_level"] for p in body["predictions"]]
            assert levels == [
                "high" if p >= 0.7 else "medium" if p >= 0.4 else "low" for p in expected
            ]
        # The stored artifact predicts exactly what is served.
        restored = BoosterScorer.from_string(booster.model_to_string())
        np.testing.assert_allclose(restored.predict(matrix), expected, rtol=0, atol=1e-12)


async def test_batch_missing_features_count_as_unknown_and_drivers_are_optional(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        model = served_model(app)
        rows = [{"days_since_last_order": 200, "email_open_rate": 0.01}, {}, {"total_orders": 3}]
        response = await client.post(
            "/v1/predictions/batch",
            headers=auth(token_signer, tenant),
            params={"drivers": "true"},
            json={"rows": rows},
        )
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        expected = model.booster.predict(
            model.parse(FeatureColumns.from_mappings(rows, model.feature_names))
        )
        np.testing.assert_allclose(
            [p["churn_probability"] for p in predictions], expected, rtol=0, atol=1e-9
        )
        assert all(len(p["drivers"]) == 3 for p in predictions)
        assert predictions[0]["drivers"][0]["feature"] in FEATURE_NAMES
        plain = await client.post(
            "/v1/predictions/batch", headers=auth(token_signer, tenant), json={"rows": rows}
        )
        assert "drivers" not in plain.json()["predictions"][0]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"rows": [', 400),
        (b"not json at all", 400),
        (orjson.dumps({"rows": [{}], "columns": {"total_orders": [1]}}), 422),
        (orjson.dumps({}), 422),
        (orjson.dumps([1, 2]), 422),
        (orjson.dumps({"rows": []}), 422),
        (orjson.dumps({"rows": [1, 2]}), 422),
        (orjson.dumps({"rows": [{"total_orders": "3"}]}), 422),
        (orjson.dumps({"rows": [{"total_orders": True}]}), 422),
        (orjson.dumps({"rows": [{"no_such_feature": 1}]}), 422),
        (orjson.dumps({"columns": {"total_orders": [1, 2], "total_spent": [1]}}), 422),
        (orjson.dumps({"columns": {"total_orders": [1, "x"]}}), 422),
        (orjson.dumps({"columns": {"mystery": [1]}}), 422),
        (orjson.dumps({"columns": {"total_orders": 1}}), 422),
        (orjson.dumps({"rows": [{}] * 10_001}), 413),
        (orjson.dumps({"columns": {"total_orders": [1.0] * 10_001}}), 413),
    ],
    ids=[
        "truncated-json",
        "not-json",
        "both-forms",
        "neither-form",
        "not-an-object",
        "no-rows",
        "rows-not-objects",
        "string-cell",
        "boolean-cell",
        "unknown-feature",
        "unequal-columns",
        "string-in-column",
        "unknown-column",
        "column-not-array",
        "too-many-rows",
        "too-many-column-values",
    ],
)
async def test_bad_batch_bodies_get_problem_details(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    tenant: str,
    body: bytes,
    status: int,
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        response = await client.post(
            "/v1/predictions/batch",
            headers={**auth(token_signer, tenant), "content-type": "application/json"},
            content=body,
        )
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
        problem = response.json()
        assert problem["status"] == status
        assert problem["detail"]


async def test_exactly_10000_rows_are_accepted(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        matrix = simulate_customers(10_000, seed=22).features
        columns = {name: matrix[:, i].tolist() for i, name in enumerate(FEATURE_NAMES)}
        response = await client.post(
            "/v1/predictions/batch",
            headers=auth(token_signer, tenant),
            content=orjson.dumps({"columns": columns}, option=orjson.OPT_SERIALIZE_NUMPY),
        )
        assert response.status_code == 200, response.text
        got = np.array([p["churn_probability"] for p in response.json()["predictions"]])
        expected = served_model(app).booster.predict(np.where(np.isnan(matrix), np.nan, matrix))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


async def test_single_prediction_by_features_explains_itself(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        features = {"days_since_last_order": 220, "email_open_rate": 0.02, "logins_last_30d": 0}
        response = await client.post(
            "/v1/predictions", headers=auth(token_signer, tenant), json={"features": features}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        model = served_model(app)
        matrix = model.parse(FeatureColumns.from_mappings([features], model.feature_names))
        assert body["customer_id"] is None
        assert body["model_version"] == "default-1"
        assert body["churn_probability"] == pytest.approx(
            model.booster.predict(matrix)[0], abs=1e-9
        )
        assert len(body["drivers"]) == 3
        contributions = model.contributions(matrix)[0]
        raw = model.booster.predict(matrix, raw_score=True)[0]
        assert contributions.sum() == pytest.approx(raw, abs=1e-9)
        top = body["drivers"][0]
        i = FEATURE_NAMES.index(top["feature"])
        assert top["contribution"] == pytest.approx(contributions[i], abs=1e-12)
        assert abs(top["contribution"]) == pytest.approx(np.abs(contributions[:-1]).max())


@pytest.mark.parametrize(
    "body",
    [
        {"features": {"no_such_feature": 1}},
        {"features": {"total_orders": "many"}},
        {"features": {"total_orders": "3"}},
        {"features": {"total_orders": True}},
        {},
        {"customer_id": "c-1", "features": {}},
    ],
    ids=["unknown-feature", "string-value", "numeric-string", "boolean", "neither", "both"],
)
async def test_single_prediction_rejects_bad_bodies(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    tenant: str,
    body: dict[str, Any],
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        response = await client.post(
            "/v1/predictions", headers=auth(token_signer, tenant), json=body
        )
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_single_prediction_by_customer_id_asks_the_customers_service(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    seen: list[httpx.Request] = []
    profile = {"days_since_last_order": 5.0, "email_open_rate": 0.6, "total_orders": 30.0}

    def customers(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.raw_path == b"/v1/customers/c%2F1/features":
            return httpx.Response(
                200,
                json={"customer_id": "c/1", "features": profile, "as_of": "2026-01-01T00:00:00Z"},
            )
        return httpx.Response(404, json={"title": "Not Found", "status": 404})

    app = create_app(
        make_settings(),
        token_verifier=token_signer.verifier(),
        customers_transport=httpx.MockTransport(customers),
    )
    headers = {**auth(token_signer, tenant), "X-Request-ID": "req-prediction-test-1"}
    async with in_process(app) as client:
        found = await client.post("/v1/predictions", headers=headers, json={"customer_id": "c/1"})
        assert found.status_code == 200, found.text
        body = found.json()
        model = served_model(app)
        expected = model.booster.predict(
            model.parse(FeatureColumns.from_mappings([profile], model.feature_names))
        )[0]
        assert body["customer_id"] == "c/1"
        assert body["churn_probability"] == pytest.approx(expected, abs=1e-9)
        assert body["risk_level"] in {"low", "medium", "high"}
        assert seen[0].headers["authorization"] == headers["Authorization"]
        assert seen[0].headers["x-request-id"] == "req-prediction-test-1"
        assert str(seen[0].url).startswith("http://customers.test/")

        missing = await client.post(
            "/v1/predictions", headers=headers, json={"customer_id": "ghost"}
        )
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith(PROBLEM)


async def test_customers_service_failure_is_a_503(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    app = create_app(
        make_settings(),
        token_verifier=token_signer.verifier(),
        customers_transport=httpx.MockTransport(broken),
    )
    async with in_process(app) as client:
        response = await client.post(
            "/v1/predictions", headers=auth(token_signer, tenant), json={"customer_id": "c-1"}
        )
        assert response.status_code == 503
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_openapi_documents_the_batch_body(
    make_settings: Callable[..., Any], in_process: Any
) -> None:
    app = create_app(make_settings())
    schema = app.openapi()
    batch = schema["paths"]["/v1/predictions/batch"]["post"]
    body_schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert {s["title"] for s in body_schema["oneOf"]} == {"BatchRows", "BatchColumns"}
    assert batch["operationId"] == "predictions_create_batch"
    assert "200" in batch["responses"]
    assert schema["paths"]["/v1/models/current"]["get"]["operationId"] == "models_get_current"
