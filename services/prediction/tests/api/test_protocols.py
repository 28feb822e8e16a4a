"""The standard inference protocols (Open Inference Protocol V2, MLflow scoring) in process,
against a real database and broker; bodies built by the protocols' own client code."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.http._infer_result import InferResult
from tritonclient.http._utils import _get_inference_request

from churn_prediction.main import create_app
from churn_prediction.scoring.scorer import BoosterScorer
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES


def auth(token_signer: Any, tenant_id: str, role: str = "analyst") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_signer.issue(tenant_id, role=role)}"}


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def matrix() -> np.ndarray:
    features = simulate_customers(200, seed=5).features
    features[::9, 2] = np.nan
    return features


def levels_of(probabilities: np.ndarray) -> list[str]:
    return ["high" if p >= 0.7 else "medium" if p >= 0.4 else "low" for p in probabilities]


class _Response:
    """What ``InferResult`` reads from a response (headers and the body)."""

    def __init__(self, headers: Any, content: bytes) -> None:
        self._headers = headers
        self._body = io.BytesIO(content)

    def get(self, name: str) -> str | None:
        value: str | None = self._headers.get(name)
        return value

    def read(self, length: int = -1) -> bytes:
        return self._body.read(length)


def triton_request(
    inputs: list[triton.InferInput], outputs: list[triton.InferRequestedOutput] | None = None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers ``tritonclient.http.InferenceServerClient.infer`` sends."""
    body, json_size = _get_inference_request(
        inputs=inputs,
        request_id="req-1",
        outputs=outputs,
        sequence_id=0,
        sequence_start=False,
        sequence_end=False,
        priority=0,
        timeout=None,
        custom_parameters=None,
    )
    headers = {} if json_size is None else {"Inference-Header-Content-Length": str(json_size)}
    return body, headers


async def test_triton_binary_matrix_scores_like_the_booster(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str, matrix
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        model: BoosterScorer = app.state.serving_models.for_tenant(tenant).model
        expected = model.predict(matrix)
        tensor = triton.InferInput("features", list(matrix.shape), "FP64")
        tensor.set_data_from_numpy(matrix, binary_data=True)
        body, headers = triton_request([tensor])
        response = await client.post(
            "/v2/models/churn/infer",
            content=body,
            headers={**headers, **auth(token_signer, tenant)},
        )
        assert response.status_code == 200, response.text
        result = InferResult(_Response(response.headers, response.content), verbose=False)
        np.testing.assert_allclose(result.as_numpy("churn_probability"), expected, atol=1e-12)
        levels = [v.decode() for v in result.as_numpy("risk_level")]
        assert levels == levels_of(expected)
        assert result.get_response()["model_version"] == "default-1"
        assert result.get_response()["id"] == "req-1"


async def test_oip_json_tensors_per_feature_and_fp32_matrix(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str, matrix
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        model: BoosterScorer = app.state.serving_models.for_tenant(tenant).model
        headers = auth(token_signer, tenant)
        named = {
            "inputs": [
                {
                    "name": name,
                    "datatype": "FP64",
                    "shape": [len(matrix)],
                    "data": [None if np.isnan(v) else float(v) for v in matrix[:, i]],
                }
                for i, name in enumerate(FEATURE_NAMES)
                if name != "total_orders"
            ]
        }
        response = await client.post("/v2/models/churn/infer", json=named, headers=headers)
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        without = matrix.copy()
        without[:, FEATURE_NAMES.index("total_orders")] = np.nan
        np.testing.assert_allclose(
            outputs["churn_probability"]["data"], model.predict(without), atol=1e-12
        )
        assert outputs["churn_probability"]["shape"] == [len(matrix)]
        assert outputs["risk_level"]["datatype"] == "BYTES"

        fp32 = np.nan_to_num(matrix, nan=0.0).astype(np.float32)
        as_matrix = {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": list(fp32.shape), "data": fp32.tolist()}
            ],
            "outputs": [{"name": "churn_probability"}],
        }
        response = await client.post(
            "/v2/models/default-1/versions/default-1/infer", json=as_matrix, headers=headers
        )
        assert response.status_code == 200, response.text
        [output] = response.json()["outputs"]
        np.testing.assert_allclose(
            output["data"], model.predict(fp32.astype(np.float64)), atol=1e-12
        )


async def test_oip_metadata_health_and_errors(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        for probe in ("/v2/health/live", "/v2/health/ready", "/ping", "/health"):
            answer = await client.get(probe)
            assert answer.status_code == 200, probe
            # The body is what its content type says (MLflow's own server sends a bare newline).
            assert answer.headers["content-type"] == "application/json", probe
            assert isinstance(answer.json(), dict), probe
        headers = auth(token_signer, tenant, role="viewer")
        server = await client.get("/v2", headers=headers)
        assert server.status_code == 200
        assert "binary_tensor_data" in server.json()["extensions"]
        metadata = (await client.get("/v2/models/churn", headers=headers)).json()
        assert metadata["versions"] == ["default-1"]
        assert metadata["inputs"] == [
            {"name": "features", "datatype": "FP64", "shape": [-1, len(FEATURE_NAMES)]}
        ]
        assert metadata["parameters"]["feature_names"] == list(FEATURE_NAMES)
        assert [o["name"] for o in metadata["outputs"]] == ["churn_probability", "risk_level"]
        ready = await client.get("/v2/models/churn/versions/default-1/ready", headers=headers)
        assert ready.json()["ready"] is True

        missing = await client.get("/v2/models/other-model", headers=headers)
        assert missing.status_code == 404
        assert "other-model" in missing.json()["error"]
        unauthenticated = await client.post("/v2/models/churn/infer", json={"inputs": []})
        assert unauthenticated.status_code == 401
        assert set(unauthenticated.json()) == {"error"}
        viewer = await client.post("/v2/models/churn/infer", json={}, headers=headers)
        assert viewer.status_code == 403
        assert "analyst" in viewer.json()["error"]
        analyst = auth(token_signer, tenant)
        for body, status in (
            (b"{", 400),
            (b'{"inputs": []}', 400),
            (
                orjson.dumps(
                    {
                        "inputs": [
                            {"name": "x", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}
                        ]
                    }
                ),
                422,
            ),
            (
                orjson.dumps(
                    {"inputs": [{"name": "nope", "datatype": "FP64", "shape": [1], "data": [1]}]}
                ),
                422,
            ),
        ):
            response = await client.post("/v2/models/churn/infer", content=body, headers=analyst)
            assert response.status_code == status, response.text
            assert response.json()["error"]


async def test_mlflow_pandas_bodies_score_like_the_booster(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str, matrix
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        model: BoosterScorer = app.state.serving_models.for_tenant(tenant).model
        expected = model.predict(matrix)
        frame = pd.DataFrame(matrix, columns=list(FEATURE_NAMES))
        headers = {**auth(token_signer, tenant), "Content-Type": "application/json"}
        split = '{"dataframe_split": ' + frame.to_json(orient="split") + "}"
        records = '{"dataframe_records": ' + frame.to_json(orient="records") + "}"
        instances = orjson.dumps({"instances": frame.to_numpy().tolist()})
        inputs = orjson.dumps(
            {"inputs": {c: frame[c].tolist() for c in frame.columns}},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        for body in (split, records, instances, inputs):
            response = await client.post("/invocations", content=body, headers=headers)
            assert response.status_code == 200, response.text
            got = pd.DataFrame(response.json()["predictions"])
            np.testing.assert_allclose(got["churn_probability"], expected, atol=1e-12)
            assert got["risk_level"].tolist() == levels_of(expected)
        csv = await client.post(
            "/invocations",
            content=frame.to_csv(index=False),
            headers={**auth(token_signer, tenant), "Content-Type": "text/csv"},
        )
        assert csv.status_code == 200, csv.text
        got = pd.DataFrame(csv.json()["predictions"])
        np.testing.assert_allclose(got["churn_probability"], expected, atol=1e-9)
        version = await client.get("/version", headers=headers)
        assert version.text == "default-1"


async def test_mlflow_errors_take_mlflows_form(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        headers = auth(token_signer, tenant)
        for body in (
            {"rows": []},
            {"dataframe_split": {"columns": ["nope"], "data": [[1]]}},
            {"dataframe_records": [{"email_open_rate": "high"}]},
            # params is an object in MLflow's schema: anything else is refused, not ignored.
            {"dataframe_records": [{"email_open_rate": 0.5}], "params": [None]},
            {"dataframe_records": [{"email_open_rate": 0.5}], "params": None},
            {"dataframe_split": {"columns": ["email_open_rate"], "data": [[0.5]], "index": {}}},
        ):
            response = await client.post("/invocations", json=body, headers=headers)
            assert response.status_code == 400, response.text
            assert response.json()["error_code"] == "BAD_REQUEST"
            assert response.json()["message"]
        unauthenticated = await client.post("/invocations", json={"instances": [[1]]})
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error_code"] == "UNAUTHENTICATED"

    # A body over the service's limit is refused before any route, in each path's own form.
    small = create_app(make_settings(max_body_bytes=2048), token_verifier=token_signer.verifier())
    async with in_process(small) as client:
        headers = auth(token_signer, tenant) | {"Content-Type": "application/json"}
        big = b" " * 4096
        mlflow = await client.post("/invocations", content=big, headers=headers)
        assert mlflow.status_code == 400
        assert mlflow.json() == {
            "error_code": "BAD_REQUEST",
            "message": "The request body exceeds the limit of 2048 bytes.",
        }
        oip = await client.post("/v2/models/churn/infer", content=big, headers=headers)
        assert oip.status_code == 413
        assert oip.json() == {"error": "The request body exceeds the limit of 2048 bytes."}
        batch = await client.post("/v1/predictions/batch", content=big, headers=headers)
        assert batch.status_code == 413
        assert batch.headers["content-type"] == "application/problem+json"
