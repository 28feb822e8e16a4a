"""Request bodies the routes parse themselves: the batch body, validated for its shape (not every
cell through a model class, so 10,000 rows stay fast) and documented as JSON schema."""

from __future__ import annotations

import contextlib
import functools
import itertools
import types
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import orjson
from starlette.requests import Request

from churn_prediction.exceptions import (
    BatchTooLargeError,
    InvalidPredictionInputError,
    MalformedBodyError,
)
from churn_prediction.scoring.scorer import RISK_LEVELS, FeatureColumns
from churn_prediction.scoring.service import ScoredBatch
from churn_shared.contracts import FEATURE_NAMES

__all__ = [
    "BATCH_REQUEST_SCHEMA",
    "INLINE_BODY_BYTES",
    "JsonBatch",
    "float_rows",
    "numeric_row_type",
    "numeric_rows",
    "prediction_objects",
    "render_batch",
    "request_body",
]

#: Bodies up to this size (a few rows) are parsed and scored on the event loop: their whole
#: work costs less than the hop to a worker thread. Larger ones always go to the thread.
INLINE_BODY_BYTES = 4096


async def request_body(request: Request) -> bytes:
    """The request body, as ``Request.body()`` reads it, without copying a body that arrives
    in one piece (the body-size limit middleware hands it over whole): ``body()`` joins it
    with the stream's closing empty chunk, a copy of every byte (3.6 MB for 10,000 rows)."""
    async with contextlib.aclosing(request.stream()) as stream:
        chunks = [chunk async for chunk in stream if chunk]
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class _NumericColumns(msgspec.Struct, forbid_unknown_fields=True):
    columns: dict[str, list[float | None]]


#: Typed decoders: a body of numbers and nulls is checked in C while it is parsed (booleans and
#: text are refused), straight into lists of floats; anything else takes the general path.
_COLUMNS = msgspec.json.Decoder(_NumericColumns)


@functools.cache
def numeric_row_type(feature_names: tuple[str, ...]) -> type[msgspec.Struct]:
    """A row object of ``feature_names``, each a number or null (absent: unknown), decoded in C
    into one small struct per row (no per-row dict, no key strings); any other key is refused
    (the general path then names it). One type per feature list, made once."""
    fields = [(f"f{i}", float | None, None) for i in range(len(feature_names))]
    return msgspec.defstruct(
        "NumericRow",
        fields,
        rename={f"f{i}": name for i, name in enumerate(feature_names)},
        forbid_unknown_fields=True,
        gc=False,
    )


@functools.cache
def _rows_decoder(feature_names: tuple[str, ...]) -> msgspec.json.Decoder[Any]:
    row_list = types.GenericAlias(list, (numeric_row_type(feature_names),))
    body = msgspec.defstruct("NumericRows", [("rows", row_list)], forbid_unknown_fields=True)
    return msgspec.json.Decoder(body)


def float_rows(
    rows: Iterable[Iterable[float | None]], n: int, width: int
) -> npt.NDArray[np.float64]:
    """``n`` rows of ``width`` numbers or nulls (NaN) as an ``n x width`` float matrix, read
    value by value into the matrix: no intermediate list, no shape inference. The caller has
    checked that every row holds ``width`` values."""
    flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.float64, count=n * width)
    return flat.reshape(n, width)


def numeric_rows(
    rows: Sequence[msgspec.Struct], feature_names: Sequence[str], max_rows: int
) -> FeatureColumns:
    """Rows decoded as :func:`numeric_row_type` structs, as one float matrix (null and absent:
    NaN) whose columns are the features."""
    n = len(rows)
    if n > max_rows:
        raise BatchTooLargeError(f"At most {max_rows} rows per batch; got {n}.")
    if n == 0:
        raise InvalidPredictionInputError("The batch has no rows.")
    width = len(feature_names)
    # One short-lived tuple per row, freed as it is read (a list of them would keep 10,000
    # objects alive for the garbage collector to walk).
    return FeatureColumns.from_matrix(float_rows(map(msgspec.structs.astuple, rows), n, width))


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
        fast = self._numeric(feature_names)
        if fast is not None:
            return fast
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

    def _numeric(self, feature_names: Sequence[str]) -> FeatureColumns | None:
        """The fast path: a body of numbers and nulls only, decoded typed; ``None`` sends any
        other body (text attributes, a malformed one) to the general path and its errors."""
        raw = self.raw
        try:
            columns = _COLUMNS.decode(raw).columns
        except (msgspec.ValidationError, msgspec.DecodeError):
            pass
        else:
            return _numeric_columns(columns, feature_names, self.max_rows)
        try:
            rows = _rows_decoder(tuple(feature_names)).decode(raw).rows
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return numeric_rows(rows, feature_names, self.max_rows)


def _numeric_columns(
    given: dict[str, list[float | None]], feature_names: Sequence[str], max_rows: int
) -> FeatureColumns:
    if not given:
        raise InvalidPredictionInputError("columns must be an object of feature arrays.")
    unknown = set(given) - set(feature_names)
    if unknown:
        raise InvalidPredictionInputError(f"Unknown features: {', '.join(sorted(unknown))}.")
    lengths = {len(column) for column in given.values()}
    n = max(lengths)
    if n > max_rows:
        raise BatchTooLargeError(f"At most {max_rows} rows per batch; got {n}.")
    if len(lengths) > 1:
        raise InvalidPredictionInputError("All columns must have the same length.")
    if n == 0:
        raise InvalidPredictionInputError("The batch has no rows.")
    # One block, a feature per row, filled list by list (NumPy reads each list in C; null:
    # NaN), then seen transposed: an n x F matrix in column-major order, which the model reads
    # as it is (no second copy into row order, no per-column array first).
    block = np.empty((len(feature_names), n), dtype=np.float64)
    for j, name in enumerate(feature_names):
        column = given.get(name)
        block[j] = np.nan if column is None else column
    return FeatureColumns.from_matrix(block.T)


_PREDICTION_OPEN = b'{"churn_probability":'
#: What follows a probability, by risk level code (``RISK_LEVELS``): its risk level, then the
#: opening of the next prediction (an object array: one NumPy call picks every row's piece).
_LEVEL_THEN_NEXT = np.array(
    [b',"risk_level":"' + level.encode() + b'"},' + _PREDICTION_OPEN for level in RISK_LEVELS],
    dtype=object,
)


def prediction_objects(
    probabilities: npt.NDArray[np.float64], level_codes: npt.NDArray[np.uint8]
) -> bytes:
    """``[{"churn_probability": p, "risk_level": level}, ...]`` as JSON, written without a
    Python object per row: orjson writes the probability array in one call (the same digits
    as for a float), the level pieces are picked by their codes, and all is joined once."""
    n = int(probabilities.shape[0])
    if n == 0:
        return b"[]"
    numbers = orjson.dumps(probabilities, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].split(b",")
    pieces: list[bytes] = [b""] * (2 * n)
    pieces[0::2] = numbers
    pieces[1::2] = _LEVEL_THEN_NEXT[level_codes].tolist()
    joined = b"".join(pieces)
    return b"[" + _PREDICTION_OPEN + joined[: -len(_PREDICTION_OPEN) - 1] + b"]"


def render_batch(scored: ScoredBatch) -> bytes:
    """The ``POST /v1/predictions/batch`` answer: predictions in input order."""
    if scored.drivers is None or scored.recommendations is None:
        version = orjson.dumps(scored.serving.version)
        predictions = prediction_objects(scored.probabilities, scored.level_codes)
        return b'{"model_version":' + version + b',"predictions":' + predictions + b"}"
    probabilities = scored.probabilities.tolist()
    levels = scored.levels.tolist()
    explained: list[dict[str, Any]] = [
        {
            "churn_probability": p,
            "risk_level": level,
            "drivers": drivers,
            "recommendations": recommendations,
        }
        for p, level, drivers, recommendations in zip(
            probabilities, levels, scored.drivers, scored.recommendations, strict=True
        )
    ]
    return orjson.dumps({"model_version": scored.serving.version, "predictions": explained})


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
