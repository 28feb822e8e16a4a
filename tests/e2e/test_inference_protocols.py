"""Integrators' own clients against the running platform: ``tritonclient`` (Open Inference
Protocol V2) and an MLflow-style pandas client, straight to the prediction service and through
the gateway, authenticated with an API key (the tenant comes from the key)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def integrator(stack: Any) -> dict[str, Any]:
    """A tenant, its owner's token and an API key with the ``predictions`` scope only."""
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        email = f"integrator-{uuid.uuid4().hex[:8]}@example.com"
        registered = client.post(
            "/v1/auth/register",
            json={"tenant_name": "integrator", "email": email, "password": PASSWORD},
        )
        assert registered.status_code == 201, registered.text
        login = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
        token = login.json()["access_token"]
        key = client.post(
            "/v1/api-keys",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "inference", "scopes": ["predictions"]},
        )
        assert key.status_code == 201, key.text
        reader = client.post(
            "/v1/api-keys",
            headers={"Authorization": f"Bearer {token}"},
            json={"name": "events-only", "scopes": ["events:write"]},
        )
        assert reader.status_code == 201, reader.text
    return {"token": token, "key": key.json()["key"], "other_key": reader.json()["key"]}


@pytest.fixture(scope="module")
def matrix() -> np.ndarray:
    features = simulate_customers(500, seed=3).features
    features[::11, 4] = np.nan
    return features


def _bases(stack: Any) -> list[str]:
    return [stack.gateway_url, stack.url("prediction")]


def _expected(stack: Any, key: str, matrix: np.ndarray) -> np.ndarray:
    """The tenant's champion's probabilities, from the v1 batch endpoint (the reference)."""
    columns = {
        name: [None if np.isnan(v) else float(v) for v in matrix[:, i]]
        for i, name in enumerate(FEATURE_NAMES)
    }
    response = httpx.post(
        f"{stack.url('prediction')}/v1/predictions/batch",
        headers={"X-API-Key": key},
        json={"columns": columns},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return np.array([p["churn_probability"] for p in response.json()["predictions"]])


@pytest.mark.parametrize("target", ["gateway", "service"])
def test_tritonclient_scores_with_an_api_key(stack, integrator, matrix, target) -> None:
    base = stack.gateway_url if target == "gateway" else stack.url("prediction")
    expected = _expected(stack, integrator["key"], matrix)
    client = triton.InferenceServerClient(url=base.removeprefix("http://"), network_timeout=60)
    try:
        headers = {"X-API-Key": integrator["key"]}
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("churn", headers=headers)
        metadata = client.get_model_metadata("churn", headers=headers)
        assert metadata["parameters"]["feature_names"] == list(FEATURE_NAMES)
        [declared] = metadata["inputs"]

        # One [N, F] tensor in the declared feature order, binary (tritonclient's default).
        tensor = triton.InferInput(declared["name"], list(matrix.shape), declared["datatype"])
        tensor.set_data_from_numpy(matrix)
        result = client.infer("churn", [tensor], headers=headers)
        np.testing.assert_allclose(result.as_numpy("churn_probability"), expected, atol=1e-12)
        levels = [v.decode() for v in result.as_numpy("risk_level")]
        assert set(levels) <= {"low", "medium", "high"}

        # One [N] tensor per feature, JSON data, with a bearer API key and a version.
        inputs = []
        for i, name in enumerate(FEATURE_NAMES):
            one = triton.InferInput(name, [len(matrix)], "FP64")
            one.set_data_from_numpy(np.nan_to_num(matrix[:, i], nan=-1.0), binary_data=False)
            inputs.append(one)
        outputs = [triton.InferRequestedOutput("churn_probability", binary_data=False)]
        bearer = {"Authorization": f"Bearer {integrator['key']}"}
        version = metadata["versions"][0]
        by_feature = client.infer(
            "churn", inputs, model_version=version, outputs=outputs, headers=bearer
        )
        assert by_feature.as_numpy("churn_probability").shape == (len(matrix),)
        assert by_feature.as_numpy("risk_level") is None

        # Errors come back in the protocol's form, which the client reads.
        with pytest.raises(InferenceServerException, match="scope"):
            client.infer("churn", [tensor], headers={"X-API-Key": integrator["other_key"]})
        with pytest.raises(InferenceServerException, match="no-such-model"):
            client.get_model_metadata("no-such-model", headers=headers)
    finally:
        client.close()


@pytest.mark.parametrize("target", ["gateway", "service"])
def test_mlflow_style_pandas_client_scores_with_an_api_key(
    stack, integrator, matrix, target
) -> None:
    base = stack.gateway_url if target == "gateway" else stack.url("prediction")
    expected = _expected(stack, integrator["key"], matrix)
    frame = pd.DataFrame(matrix, columns=list(FEATURE_NAMES))
    headers = {"X-API-Key": integrator["key"]}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as http:
        assert http.get("/ping").status_code == 200
        assert http.get("/health", headers={"X-API-Key": ""}).status_code == 200
        # What MLflow's clients send: the split frame as JSON, and CSV.
        split = '{"dataframe_split": ' + frame.to_json(orient="split") + "}"
        bodies = [
            (split, "application/json"),
            ('{"dataframe_records": ' + frame.to_json(orient="records") + "}", "application/json"),
            (frame.to_csv(index=False), "text/csv"),
        ]
        for body, content_type in bodies:
            response = http.post(
                "/invocations", content=body, headers={"Content-Type": content_type}
            )
            assert response.status_code == 200, response.text
            scored = pd.DataFrame(response.json()["predictions"])
            np.testing.assert_allclose(scored["churn_probability"], expected, atol=1e-9)
        assert http.get("/version").status_code == 200
        refused = http.post(
            "/invocations",
            content=split,
            headers={"Content-Type": "application/json", "X-API-Key": integrator["other_key"]},
        )
        assert refused.status_code == 403
        assert refused.json()["error_code"] == "PERMISSION_DENIED"
        anonymous = httpx.post(f"{base}/invocations", content=split, timeout=30)
        assert anonymous.status_code == 401
        assert anonymous.json()["error_code"] == "UNAUTHENTICATED"
