"""Batch bodies: the typed fast path (numbers and nulls) reads exactly what the general path
reads, and every other body still gets the general path's answers."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from starlette.requests import Request

from churn_prediction.api.bodies import JsonBatch, prediction_objects, request_body
from churn_prediction.api.protocol_bodies import MlflowBody
from churn_prediction.exceptions import InvalidPredictionInputError
from churn_prediction.scoring.scorer import (
    RISK_LEVELS,
    FeatureColumns,
    InvalidFeatureValueError,
    _float_matrix,
    risk_level,
    risk_level_array,
    risk_level_codes,
)

NAMES = ("a", "b", "c")


def matrix(columns: FeatureColumns) -> np.ndarray:
    return _float_matrix(columns, NAMES)


def general(body: object) -> np.ndarray:
    """What the general path reads (a body the fast path cannot take: text somewhere)."""
    batch = JsonBatch(orjson.dumps(body), max_rows=100)
    return matrix(batch.columns(NAMES))


@pytest.mark.parametrize(
    "body",
    [
        {"rows": [{"a": 1, "b": 2.5, "c": None}, {"a": 3, "b": None, "c": 4}]},
        {"rows": [{"c": 1.0, "a": 2.0}, {"a": 3.0}, {}]},
        {"columns": {"a": [1, None], "c": [0.5, 2]}},
    ],
)
def test_fast_path_reads_numbers_nulls_and_missing_features(body: dict) -> None:
    got = matrix(JsonBatch(orjson.dumps(body), max_rows=100).columns(NAMES))
    if "rows" in body:
        expected = np.array(
            [[np.nan if r.get(n) is None else r[n] for n in NAMES] for r in body["rows"]]
        )
    else:
        cols = body["columns"]
        expected = np.array(
            [
                [np.nan if n not in cols or cols[n][i] is None else cols[n][i] for n in NAMES]
                for i in range(2)
            ]
        )
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "body",
    [
        {"rows": [{"a": True}]},
        {"rows": [{"a": "1.5"}]},
        {"columns": {"a": [1.0, False]}},
        {"columns": {"b": ["x", 1.0]}},
    ],
)
def test_booleans_and_text_still_fail_for_a_numeric_model(body: dict) -> None:
    with pytest.raises(InvalidFeatureValueError):
        general(body)


def test_unknown_features_are_refused_on_the_fast_path() -> None:
    with pytest.raises(InvalidPredictionInputError, match="zzz"):
        JsonBatch(b'{"rows": [{"zzz": 1}]}', max_rows=10).columns(NAMES)
    with pytest.raises(InvalidPredictionInputError, match="zzz"):
        JsonBatch(b'{"columns": {"zzz": [1]}}', max_rows=10).columns(NAMES)


def test_mlflow_split_and_records_fast_paths_match() -> None:
    split = {
        "dataframe_split": {"columns": ["c", "a"], "index": [0, 1], "data": [[1, 2], [None, 4]]}
    }
    records = {"dataframe_records": [{"c": 1, "a": 2}, {"a": 4}]}
    expected = np.array([[2.0, np.nan, 1.0], [4.0, np.nan, np.nan]])
    for body in (split, records):
        parsed = MlflowBody(orjson.dumps(body), content_type="application/json", max_rows=10)
        np.testing.assert_array_equal(matrix(parsed.columns(NAMES)), expected)
    text = {"dataframe_split": {"columns": ["a"], "data": [["x"]]}}
    parsed = MlflowBody(orjson.dumps(text), content_type="application/json", max_rows=10)
    with pytest.raises(InvalidFeatureValueError):
        matrix(parsed.columns(NAMES))


@pytest.mark.parametrize("columns", [list(NAMES), ["c", "a", "b"]], ids=["in-order", "shuffled"])
@pytest.mark.parametrize("params", [None, {"x": "y"}], ids=["no-params", "params"])
def test_mlflow_split_of_every_feature_is_read_exactly(
    columns: list[str], params: dict | None
) -> None:
    data = [[1, None, 2.5], [None, 4, 0.0]]
    body: dict = {"dataframe_split": {"columns": columns, "data": data}}
    if params is not None:
        body["params"] = params
    parsed = MlflowBody(orjson.dumps(body), content_type="application/json", max_rows=10)
    expected = np.array([[np.nan if v is None else v for v in row] for row in data])
    order = [columns.index(name) for name in NAMES]
    np.testing.assert_array_equal(matrix(parsed.columns(NAMES)), expected[:, order])


@pytest.mark.parametrize(
    "data",
    [[[1, 2], [3]], [[1, 2, 3]], [[1, 2, 3], [1, 2]]],
    ids=["short-row", "rows-of-every-feature", "ragged"],
)
def test_mlflow_split_rows_of_another_width_than_the_columns_are_refused(data: list) -> None:
    body = {"dataframe_split": {"columns": ["a", "b"], "data": data}}
    parsed = MlflowBody(orjson.dumps(body), content_type="application/json", max_rows=10)
    with pytest.raises(InvalidPredictionInputError, match="2 values"):
        parsed.columns(NAMES)


def test_risk_level_codes_name_the_level_of_every_probability() -> None:
    probabilities = np.array([0.0, 0.29, 0.3, 0.69, 0.7, 1.0, np.nan])
    codes = risk_level_codes(probabilities, 0.3, 0.7)
    assert [RISK_LEVELS[c] for c in codes.tolist()] == [
        risk_level(p, 0.3, 0.7) for p in probabilities.tolist()
    ]


@pytest.mark.parametrize("n", [0, 1, 2, 1000])
def test_predictions_written_without_row_objects_equal_the_per_row_dicts(n: int) -> None:
    rng = np.random.default_rng(n)
    probabilities = rng.random(n)
    probabilities[: min(n, 3)] = [0.0, 1.0, 1e-17][: min(n, 3)]
    levels = risk_level_array(probabilities, 0.3, 0.7)
    written = prediction_objects(probabilities, risk_level_codes(probabilities, 0.3, 0.7))
    rows = [
        {"churn_probability": p, "risk_level": level}
        for p, level in zip(probabilities.tolist(), levels.tolist(), strict=True)
    ]
    assert written == orjson.dumps(rows)
    assert orjson.loads(written) == rows


def _request(*parts: bytes) -> Request:
    messages = [
        {"type": "http.request", "body": part, "more_body": i < len(parts) - 1}
        for i, part in enumerate(parts)
    ]

    async def receive() -> dict:
        return messages.pop(0)

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


async def test_a_body_in_one_piece_is_handed_over_without_a_copy() -> None:
    body = b"1" * 100_000
    assert await request_body(_request(body)) is body


async def test_a_body_in_pieces_is_joined() -> None:
    assert await request_body(_request(b"ab", b"", b"cd")) == b"abcd"
    assert await request_body(_request(b"")) == b""
