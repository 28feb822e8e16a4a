"""Request bodies the routes parse themselves: the batch body, validated for its shape (not every
cell through a model class, so 10,000 rows stay fast) and documented as JSON schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from churn_prediction.exceptions import (
    BatchTooLargeError,
    InvalidPredictionInputError,
    MalformedBodyError,
)
from churn_prediction.scoring.scorer import FeatureColumns
from churn_prediction.scoring.service import ScoredBatch
from churn_shared.contracts import FEATURE_NAMES

__all__ = ["BATCH_REQUEST_SCHEMA", "JsonBatch", "render_batch"]


class JsonBatch:
    """A ``POST /v1/predictions/batch`` body: ``{"rows": [...]}`` or ``{"columns": {...}}``.

    Parsed by :meth:`columns` against the serving model's features, which the scoring service
    calls in its worker thread (a 10,000-row body never parses on the event loop). The values'
    types are the model's to check (:meth:`churn_prediction.scoring.scorer.Scorer.parse`).
    """

    def __init__(self, raw: bytes, *, max_rows: int) -> None:
        self.raw = raw
        self.max_rows = max_rows

    def columns(self, feature_names: Sequence[str]) -> FeatureColumns:
        """The body's values per feature, in ``feature_names`` order: 400 for JSON that does not
        parse, 413 beyond ``max_rows`` rows, 422 for any other shape or an unknown feature."""
        max_rows = self.max_rows
        try:
            body = orjson.loads(self.raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedBodyError(f"The request body is not valid JSON: {exc}") from exc
        if type(body) is not dict:
            raise InvalidPredictionInputError("The body must be an object with rows or columns.")
        if set(body) - {"rows", "columns"}:
            extra = ", ".join(sorted(set(body) - {"rows", "columns"}))
            raise InvalidPredictionInputError(f"Unknown fields in the body: {extra}.")
        has_rows, has_columns = "rows" in body, "columns" in body
        if has_rows == has_columns:
            raise InvalidPredictionInputError("Give exactly one of rows or columns.")
        known = frozenset(feature_names)
        columns: list[list[Any] | None]
        if has_rows:
            rows = body["rows"]
            if type(rows) is not list:
                raise InvalidPredictionInputError("rows must be an array of objects.")
            n = len(rows)
            if n > max_rows:
                raise BatchTooLargeError(f"At most {max_rows} rows per batch; got {n}.")
            seen: set[str] = set()
            for row in rows:
                if type(row) is not dict:
                    raise InvalidPredictionInputError("Every row must be an object.")
                seen.update(row)
            unknown = seen - known
            if unknown:
                raise InvalidPredictionInputError(
                    f"Unknown features: {', '.join(sorted(unknown))}."
                )
            columns = [
                [row.get(name) for row in rows] if name in seen else None for name in feature_names
            ]
        else:
            given = body["columns"]
            if type(given) is not dict or not given:
                raise InvalidPredictionInputError("columns must be an object of feature arrays.")
            unknown = set(given) - known
            if unknown:
                raise InvalidPredictionInputError(
                    f"Unknown features: {', '.join(sorted(unknown))}."
                )
            lengths = set()
            for name, column in given.items():
                if type(column) is not list:
                    raise InvalidPredictionInputError(f"Column {name!r} must be an array.")
                lengths.add(len(column))
            n = max(lengths)
            if n > max_rows:
                raise BatchTooLargeError(f"At most {max_rows} rows per batch; got {n}.")
            if len(lengths) > 1:
                raise InvalidPredictionInputError("All columns must have the same length.")
            columns = [given.get(name) for name in feature_names]
        if n == 0:
            raise InvalidPredictionInputError("The batch has no rows.")
        return FeatureColumns(n, columns)


def render_batch(scored: ScoredBatch) -> bytes:
    """The ``POST /v1/predictions/batch`` answer: predictions in input order."""
    probabilities = scored.probabilities.tolist()
    levels = scored.levels.tolist()
    predictions: list[dict[str, Any]] = [
        {"churn_probability": p, "risk_level": level}
        for p, level in zip(probabilities, levels, strict=True)
    ]
    if scored.drivers is not None and scored.recommendations is not None:
        for item, drivers, recommendations in zip(
            predictions, scored.drivers, scored.recommendations, strict=True
        ):
            item["drivers"] = drivers
            item["recommendations"] = recommendations
    return orjson.dumps({"model_version": scored.serving.version, "predictions": predictions})


def _feature_properties() -> dict[str, Any]:
    return {name: {"type": ["number", "null"]} for name in FEATURE_NAMES}


#: The batch body, documented as JSON schema (the route validates its shape itself, fast).
BATCH_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "BatchPredictionCreate",
    "description": (
        "Exactly one of `rows` (one object per row) or `columns` (one array per feature, all of "
        "equal length). At most `max_batch_rows` rows (default 10,000; 413 beyond). Values are "
        "numbers or null; a missing feature counts as unknown (NaN); an unknown feature name "
        "is refused (422)."
    ),
    "oneOf": [
        {
            "type": "object",
            "title": "BatchRows",
            "properties": {
                "rows": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": _feature_properties(),
                        "additionalProperties": False,
                    },
                }
            },
            "required": ["rows"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "title": "BatchColumns",
            "properties": {
                "columns": {
                    "type": "object",
                    "properties": {
                        name: {"type": "array", "items": {"type": ["number", "null"]}}
                        for name in FEATURE_NAMES
                    },
                    "additionalProperties": False,
                    "minProperties": 1,
                }
            },
            "required": ["columns"],
            "additionalProperties": False,
        },
    ],
    "examples": [
        {"rows": [{"days_since_last_order": 3, "email_open_rate": 0.5, "total_orders": 12}]},
        {"columns": {"days_since_last_order": [3, 180], "email_open_rate": [0.5, None]}},
    ],
}
