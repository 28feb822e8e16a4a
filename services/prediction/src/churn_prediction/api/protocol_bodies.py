"""The two standard inference protocols' bodies: parsed straight into feature columns (NumPy
arrays, no per-row objects) and scored results rendered without per-row objects where the
protocol allows it.

* Open Inference Protocol V2 (KServe V2 REST, Triton, MLServer): :class:`OipInferBody` reads an
  inference request, JSON or with the binary tensor data extension (what ``tritonclient``
  sends), and :func:`render_oip` writes the response the same way the caller asked.
* MLflow scoring protocol: :class:`MlflowBody` reads ``dataframe_split``, ``dataframe_records``,
  ``instances``, ``inputs`` or a CSV body; :func:`render_mlflow` answers ``{"predictions": …}``.

Both are parsed in the scoring worker thread (``columns`` is called there), never on the loop.
"""

from __future__ import annotations

import functools
import io
import struct
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from churn_prediction.api.bodies import (
    float_rows,
    numeric_row_type,
    numeric_rows,
    prediction_objects,
)
from churn_prediction.exceptions import (
    BatchTooLargeError,
    InvalidPredictionInputError,
    MalformedBodyError,
)
from churn_prediction.scoring.scorer import RISK_LEVELS, FeatureColumns
from churn_prediction.scoring.service import ScoredBatch
from churn_prediction.scoring.serving import ServingModel

__all__ = [
    "BINARY_HEADER",
    "MLFLOW_REQUEST_SCHEMA",
    "OIP_INFER_REQUEST_SCHEMA",
    "OUTPUT_LEVEL",
    "OUTPUT_PROBABILITY",
    "MlflowBody",
    "OipInferBody",
    "model_metadata",
    "render_mlflow",
    "render_oip",
]

#: The header of the binary tensor data extension: the length of the JSON part of the body.
BINARY_HEADER = "inference-header-content-length"
OUTPUT_PROBABILITY = "churn_probability"
OUTPUT_LEVEL = "risk_level"
_OUTPUTS = (OUTPUT_PROBABILITY, OUTPUT_LEVEL)

#: Tensor datatypes accepted for numeric features, as little-endian NumPy dtypes.
_NUMERIC_DTYPES: dict[str, str] = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}
#: Each risk level (by its code, ``RISK_LEVELS``) as a BYTES tensor element and as a JSON
#: string: object arrays, so that one NumPy call picks every row's.
_LEVEL_BYTES = np.array(
    [struct.pack("<I", len(level)) + level.encode() for level in RISK_LEVELS], dtype=object
)
_LEVEL_NAMES = np.array(RISK_LEVELS, dtype=object)


def _check_rows(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise BatchTooLargeError(f"At most {max_rows} rows per request; got {n}.")
    if n == 0:
        raise InvalidPredictionInputError("The request has no rows.")


def _unknown(names: Sequence[str], feature_names: Sequence[str]) -> None:
    unknown = sorted(set(names) - set(feature_names))
    if unknown:
        raise InvalidPredictionInputError(f"Unknown features: {', '.join(unknown)}.")


# -- Open Inference Protocol V2 ------------------------------------------------------------------


def _decode_bytes_tensor(buffer: bytes, count: int) -> list[str | None]:
    """The binary BYTES layout: each element is a 4-byte little-endian length, then its bytes."""
    values: list[str | None] = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(buffer):
            raise InvalidPredictionInputError("A BYTES tensor is shorter than its shape.")
        (length,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        values.append(buffer[offset : offset + length].decode())
        offset += length
    return values


@dataclass(slots=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    values: npt.NDArray[Any] | list[Any]


class OipInferBody:
    """``POST /v2/models/{name}/infer``: ``inputs`` either one numeric ``[N, F]`` tensor in the
    model's feature order or one ``[N]`` tensor per named feature (BYTES for text attributes);
    tensor data inline (``data``) or binary (``binary_data_size`` after the JSON header)."""

    def __init__(self, raw: bytes, *, header_length: str | None, max_rows: int) -> None:
        self.raw = raw
        self.header_length = header_length
        self.max_rows = max_rows
        self.request_id: str | None = None
        #: Outputs to return, each with whether it goes binary.
        self.outputs: list[tuple[str, bool]] = []

    def _header(self) -> tuple[dict[str, Any], int]:
        raw = self.raw
        if self.header_length is not None:
            try:
                size = int(self.header_length)
            except ValueError as exc:
                raise MalformedBodyError(f"{BINARY_HEADER} is not a number.") from exc
            if not 0 < size <= len(raw):
                raise MalformedBodyError(f"{BINARY_HEADER} is outside the body.")
        else:
            size = len(raw)
        try:
            header = orjson.loads(raw[:size])
        except orjson.JSONDecodeError as exc:
            raise MalformedBodyError(f"The inference request is not valid JSON: {exc}") from exc
        if type(header) is not dict:
            raise MalformedBodyError("The inference request must be a JSON object.")
        return header, size

    def _requested_outputs(self, header: dict[str, Any]) -> None:
        parameters = header.get("parameters") or {}
        if type(parameters) is not dict:
            raise MalformedBodyError("parameters must be an object.")
        binary_default = bool(parameters.get("binary_data_output", False))
        requested = header.get("outputs")
        if requested is None:
            self.outputs = [(name, binary_default) for name in _OUTPUTS]
            return
        if type(requested) is not list:
            raise MalformedBodyError("outputs must be an array.")
        outputs: list[tuple[str, bool]] = []
        for item in requested:
            if type(item) is not dict or item.get("name") not in _OUTPUTS:
                raise MalformedBodyError(
                    f"Unknown output; this model has {OUTPUT_PROBABILITY} and {OUTPUT_LEVEL}."
                )
            binary = (item.get("parameters") or {}).get("binary_data", binary_default)
            outputs.append((item["name"], bool(binary)))
        self.outputs = outputs

    def _tensors(self, header: dict[str, Any], offset: int) -> list[_Tensor]:
        inputs = header.get("inputs")
        if type(inputs) is not list or not inputs:
            raise MalformedBodyError("inputs must be a non-empty array of tensors.")
        tensors: list[_Tensor] = []
        raw = self.raw
        for item in inputs:
            if type(item) is not dict:
                raise MalformedBodyError("Every input must be a tensor object.")
            name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
            if type(name) is not str or type(datatype) is not str:
                raise MalformedBodyError("Every input needs a name and a datatype.")
            if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
                raise MalformedBodyError(f"Input {name!r} needs a shape of sizes.")
            count = int(np.prod(shape)) if shape else 1
            size = (item.get("parameters") or {}).get("binary_data_size")
            values: npt.NDArray[Any] | list[Any]
            if size is not None:
                if type(size) is not int or size < 0 or offset + size > len(raw):
                    raise MalformedBodyError(f"Input {name!r}: binary_data_size is wrong.")
                chunk = raw[offset : offset + size]
                offset += size
                if datatype == "BYTES":
                    values = _decode_bytes_tensor(chunk, count)
                elif datatype in _NUMERIC_DTYPES:
                    dtype = np.dtype(_NUMERIC_DTYPES[datatype])
                    if size != count * dtype.itemsize:
                        raise MalformedBodyError(
                            f"Input {name!r}: {size} bytes do not hold shape {shape}."
                        )
                    values = np.frombuffer(chunk, dtype=dtype).reshape(shape)
                else:
                    raise InvalidPredictionInputError(f"Input {name!r}: {datatype} is refused.")
            else:
                data = item.get("data")
                if type(data) is not list:
                    raise MalformedBodyError(f"Input {name!r} has no data.")
                if datatype == "BYTES":
                    flat = data
                    while flat and type(flat[0]) is list:
                        flat = [v for row in flat for v in row]
                    if len(flat) != count or not all(type(v) is str or v is None for v in flat):
                        raise InvalidPredictionInputError(
                            f"Input {name!r}: BYTES data must be {count} strings."
                        )
                    values = flat
                elif datatype in _NUMERIC_DTYPES:
                    try:
                        if data and type(data[0]) is not list:
                            # Flat (the usual form): read value by value, no shape inference.
                            array = np.fromiter(data, dtype=np.float64, count=len(data))
                        else:
                            array = np.asarray(data, dtype=np.float64)
                    except (TypeError, ValueError) as exc:
                        raise InvalidPredictionInputError(
                            f"Input {name!r}: data must be numbers."
                        ) from exc
                    if array.size != count:
                        raise InvalidPredictionInputError(
                            f"Input {name!r}: {array.size} values do not fill shape {shape}."
                        )
                    values = array.reshape(shape)
                else:
                    raise InvalidPredictionInputError(f"Input {name!r}: {datatype} is refused.")
            tensors.append(_Tensor(name, tuple(shape), values))
        return tensors

    def columns(self, feature_names: Sequence[str]) -> FeatureColumns:
        """400 for a malformed request, 413 beyond ``max_rows``, 422 for shapes or names the
        model cannot read."""
        header, size = self._header()
        request_id = header.get("id")
        self.request_id = request_id if type(request_id) is str else None
        self._requested_outputs(header)
        tensors = self._tensors(header, size)
        width = len(feature_names)
        first = tensors[0]
        if len(tensors) == 1 and len(first.shape) == 2 and first.name not in feature_names:
            tensor = first
            n, f = tensor.shape
            if f != width:
                raise InvalidPredictionInputError(
                    f"Input {tensor.name!r} has {f} columns; the model reads {width} features "
                    f"in this order: {', '.join(feature_names)}."
                )
            if not isinstance(tensor.values, np.ndarray):
                raise InvalidPredictionInputError("A [N, F] input must be a numeric tensor.")
            _check_rows(n, self.max_rows)
            return FeatureColumns.from_matrix(tensor.values)
        _unknown([t.name for t in tensors], feature_names)
        lengths = set()
        by_name: dict[str, npt.NDArray[Any] | list[Any]] = {}
        for tensor in tensors:
            if len(tensor.shape) == 2 and tensor.shape[1] == 1:
                values = tensor.values
                tensor.values = (
                    values.reshape(-1) if isinstance(values, np.ndarray) else list(values)
                )
            elif len(tensor.shape) != 1:
                raise InvalidPredictionInputError(
                    f"Input {tensor.name!r}: a named feature is a [N] tensor."
                )
            if tensor.name in by_name:
                raise InvalidPredictionInputError(f"Input {tensor.name!r} is given twice.")
            lengths.add(tensor.shape[0])
            by_name[tensor.name] = tensor.values
        if len(lengths) != 1:
            raise InvalidPredictionInputError("All inputs must have the same number of rows.")
        n = lengths.pop()
        _check_rows(n, self.max_rows)
        return FeatureColumns(n, [by_name.get(name) for name in feature_names])


def render_oip(
    scored: ScoredBatch, body: OipInferBody, model_name: str
) -> tuple[bytes, int | None]:
    """The inference response and, when any output is binary, the length of its JSON part
    (the value of the ``Inference-Header-Content-Length`` response header)."""
    n = scored.n
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, binary in body.outputs or [(name, False) for name in _OUTPUTS]:
        if name == OUTPUT_PROBABILITY:
            tensor: dict[str, Any] = {"name": name, "datatype": "FP64", "shape": [n]}
            if binary:
                blob = scored.probabilities.astype("<f8", copy=False).tobytes()
            else:
                tensor["data"] = scored.probabilities
        else:
            tensor = {"name": name, "datatype": "BYTES", "shape": [n]}
            if binary:
                blob = b"".join(_LEVEL_BYTES[scored.level_codes].tolist())
            else:
                tensor["data"] = _LEVEL_NAMES[scored.level_codes].tolist()
        if binary:
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        outputs.append(tensor)
    response: dict[str, Any] = {
        "model_name": model_name,
        "model_version": scored.serving.version,
        "outputs": outputs,
    }
    if body.request_id is not None:
        response["id"] = body.request_id
    header = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def model_metadata(model_name: str, serving: ServingModel) -> dict[str, Any]:
    """``GET /v2/models/{name}``: the inputs the model reads and the outputs it gives."""
    model = serving.model
    names = list(model.feature_names)
    per_feature = [
        {"name": name, "datatype": "FP64" if model.numeric_only else "BYTES", "shape": [-1]}
        for name in names
    ]
    inputs: list[dict[str, Any]]
    if model.numeric_only:
        inputs = [{"name": "features", "datatype": "FP64", "shape": [-1, len(names)]}]
    else:
        inputs = per_feature
    return {
        "name": model_name,
        "versions": [serving.version],
        "platform": f"churn-{serving.kind}",
        "inputs": inputs,
        "outputs": [
            {"name": OUTPUT_PROBABILITY, "datatype": "FP64", "shape": [-1]},
            {"name": OUTPUT_LEVEL, "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {
            "feature_names": names,
            "numeric_only": model.numeric_only,
            "per_feature_inputs": per_feature,
        },
    }


# -- MLflow scoring protocol ---------------------------------------------------------------------

_MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def _pandas_body_decoder(name: str, key: str, value: Any) -> msgspec.json.Decoder[Any]:
    """A decoder of ``{key: value, "params": {...}}`` and nothing else (MLflow's body)."""
    body = msgspec.defstruct(
        name,
        [
            (key, value),
            # An object when given, never null.
            ("params", dict[str, Any], msgspec.field(default_factory=dict)),
        ],
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(body)


def _split_decoder(row: Any) -> msgspec.json.Decoder[Any]:
    split = msgspec.defstruct(
        "NumericSplit",
        [
            ("data", types.GenericAlias(list, (row,))),
            ("columns", list[str] | None, None),
            # An array when given, never null.
            ("index", list[Any], msgspec.field(default_factory=list)),
        ],
    )
    return _pandas_body_decoder("NumericSplitBody", "dataframe_split", split)


#: Typed decoders for the two pandas formats when every value is a number or null: checked in C
#: while parsed; any other body takes the general path (text attributes, its error messages).
#: ``dataframe_split`` rows of any width as tuples: a list of 10,000 lists has the garbage
#: collector walk the heap again and again while it is decoded (28 ms a request in the running
#: service, more than the parse itself).
_SPLIT = _split_decoder(tuple[float | None, ...])


@functools.cache
def _split_rows_decoder(width: int) -> msgspec.json.Decoder[Any]:
    """``dataframe_split`` rows of exactly ``width`` values (the model's features, the usual
    body) as array-like structs, which the garbage collector does not track at all (tuples it
    still does)."""
    fields = [(f"v{i}", float | None) for i in range(width)]  # all required: exact width
    row = msgspec.defstruct("NumericSplitRow", fields, array_like=True, gc=False)
    return _split_decoder(row)


@functools.cache
def _records_decoder(feature_names: tuple[str, ...]) -> msgspec.json.Decoder[Any]:
    """``dataframe_records`` of the model's features as row structs (:func:`numeric_row_type`)."""
    records = types.GenericAlias(list, (numeric_row_type(feature_names),))
    return _pandas_body_decoder("NumericRecordsBody", "dataframe_records", records)


def _columns_from_records(
    records: list[Any], feature_names: Sequence[str], max_rows: int
) -> FeatureColumns:
    n = len(records)
    _check_rows(n, max_rows)
    if all(type(r) is dict for r in records):
        seen: set[str] = set()
        for record in records:
            seen.update(record)
        _unknown(sorted(seen), feature_names)
        return FeatureColumns(
            n,
            [[r.get(name) for r in records] if name in seen else None for name in feature_names],
        )
    if all(type(r) is list for r in records):
        return _columns_from_matrix(records, feature_names, feature_names)
    raise InvalidPredictionInputError("Rows must be all objects or all arrays.")


def _columns_from_matrix(
    data: list[Any], names: Sequence[str], feature_names: Sequence[str]
) -> FeatureColumns:
    """Row-major ``data`` whose columns are ``names``: a float matrix when every value is a
    number or null, else per-column lists (text attributes)."""
    _unknown(names, feature_names)
    if len(set(names)) != len(names):
        raise InvalidPredictionInputError("A column is named twice.")
    n = len(data)
    width = len(names)
    matrix = _float_matrix(data)
    if matrix is not None and matrix.shape == (n, width):
        position = {name: i for i, name in enumerate(names)}
        return FeatureColumns(
            n,
            [matrix[:, position[name]] if name in position else None for name in feature_names],
        )
    if any(type(row) is not list or len(row) != width for row in data):
        raise InvalidPredictionInputError(f"Every row must hold {width} values.")
    by_name = {name: [row[i] for row in data] for i, name in enumerate(names)}
    return FeatureColumns(n, [by_name.get(name) for name in feature_names])


def _float_matrix(data: list[Any]) -> npt.NDArray[np.float64] | None:
    """``data`` as a float matrix when every value is a number or null, else ``None``: NumPy
    infers the type in C (text makes a string array, nulls an object one, checked per value)."""
    try:
        inferred = np.array(data)
    except ValueError:  # ragged rows
        return None
    if inferred.dtype.kind in "fiu":
        return inferred.astype(np.float64, copy=False)
    numbers = {int, float, type(None)}
    if inferred.dtype.kind == "O" and set(map(type, inferred.ravel().tolist())) <= numbers:
        return np.array(data, dtype=np.float64)
    return None


class MlflowBody:
    """``POST /invocations``: a JSON body in one of MLflow's four formats, or ``text/csv``."""

    def __init__(self, raw: bytes, *, content_type: str, max_rows: int) -> None:
        self.raw = raw
        self.content_type = content_type.split(";")[0].strip().lower()
        self.max_rows = max_rows

    def columns(self, feature_names: Sequence[str]) -> FeatureColumns:
        if self.content_type == "text/csv":
            return self._csv(feature_names)
        if self.content_type not in ("application/json", ""):
            raise InvalidPredictionInputError(
                f"Unsupported content type {self.content_type!r}: use application/json or text/csv."
            )
        fast = self._numeric(feature_names)
        if fast is not None:
            return fast
        try:
            body = orjson.loads(self.raw)
        except orjson.JSONDecodeError as exc:
            raise MalformedBodyError(f"The request body is not valid JSON: {exc}") from exc
        if type(body) is not dict:
            raise InvalidPredictionInputError(
                f"The body must be an object with one of {', '.join(_MLFLOW_FORMATS)}."
            )
        given = [key for key in _MLFLOW_FORMATS if key in body]
        extra = set(body) - set(_MLFLOW_FORMATS) - {"params"}
        if len(given) != 1 or extra:
            raise InvalidPredictionInputError(
                f"Give exactly one of {', '.join(_MLFLOW_FORMATS)} (and optionally params)."
            )
        if "params" in body and type(body["params"]) is not dict:
            raise InvalidPredictionInputError("params must be an object (the model takes none).")
        fmt = given[0]
        value = body[fmt]
        if fmt == "dataframe_split":
            if type(value) is not dict or type(value.get("data")) is not list:
                raise InvalidPredictionInputError("dataframe_split needs columns and data.")
            if "index" in value and type(value["index"]) is not list:
                raise InvalidPredictionInputError("dataframe_split index must be an array.")
            names = value.get("columns")
            data = value["data"]
            if names is None:
                names = list(feature_names)
            if type(names) is not list or not all(type(c) is str for c in names):
                raise InvalidPredictionInputError("dataframe_split columns must be names.")
            _check_rows(len(data), self.max_rows)
            return _columns_from_matrix(data, names, feature_names)
        if fmt == "dataframe_records" or type(value) is list:
            if type(value) is not list:
                raise InvalidPredictionInputError(f"{fmt} must be an array of records.")
            return _columns_from_records(value, feature_names, self.max_rows)
        if type(value) is dict:
            return self._columnar(value, feature_names)
        raise InvalidPredictionInputError(f"{fmt} must be an array or an object of columns.")

    def _numeric(self, feature_names: Sequence[str]) -> FeatureColumns | None:
        """``dataframe_split`` / ``dataframe_records`` of numbers and nulls, decoded typed."""
        split = self._numeric_split(len(feature_names))
        if split is not None:
            names = split.columns if split.columns is not None else list(feature_names)
            _unknown(names, feature_names)
            if len(set(names)) != len(names):
                raise InvalidPredictionInputError("A column is named twice.")
            n = len(split.data)
            _check_rows(n, self.max_rows)
            rows: Iterable[Iterable[float | None]] = split.data
            if n and type(split.data[0]) is not tuple:  # rows of the features' width
                if len(names) != len(feature_names):
                    raise InvalidPredictionInputError(f"Every row must hold {len(names)} values.")
                rows = map(msgspec.structs.astuple, split.data)
            elif any(len(row) != len(names) for row in split.data):
                raise InvalidPredictionInputError(f"Every row must hold {len(names)} values.")
            matrix = float_rows(rows, n, len(names))
            if list(names) == list(feature_names):
                return FeatureColumns.from_matrix(matrix)
            position = {name: i for i, name in enumerate(names)}
            return FeatureColumns(
                n, [matrix[:, position[f]] if f in position else None for f in feature_names]
            )
        try:
            records = _records_decoder(tuple(feature_names)).decode(self.raw).dataframe_records
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        return numeric_rows(records, feature_names, self.max_rows)

    def _numeric_split(self, width: int) -> Any:
        """The ``dataframe_split`` of a body of numbers and nulls, or ``None``: rows of ``width``
        values as structs, any other rows as tuples."""
        for decoder in (_split_rows_decoder(width), _SPLIT):
            try:
                return decoder.decode(self.raw).dataframe_split
            except (msgspec.ValidationError, msgspec.DecodeError):
                continue
        return None

    def _columnar(self, value: dict[str, Any], feature_names: Sequence[str]) -> FeatureColumns:
        _unknown(list(value), feature_names)
        lengths = {len(v) if type(v) is list else -1 for v in value.values()}
        if -1 in lengths or len(lengths) != 1:
            raise InvalidPredictionInputError("Columns must be arrays of equal length.")
        n = lengths.pop()
        _check_rows(n, self.max_rows)
        return FeatureColumns(n, [value.get(name) for name in feature_names])

    def _csv(self, feature_names: Sequence[str]) -> FeatureColumns:
        """A header row, then one row per customer (pandas' C parser; empty cells unknown)."""
        import pandas as pd

        try:
            frame = pd.read_csv(io.BytesIO(self.raw))
        except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InvalidPredictionInputError(f"The CSV body cannot be read: {exc}") from exc
        names = [str(name) for name in frame.columns]
        _unknown(names, feature_names)
        _check_rows(len(frame), self.max_rows)
        columns: dict[str, Any] = {}
        for name in names:
            column = frame[name]
            if column.dtype.kind in "fiu":
                columns[name] = column.to_numpy(dtype=np.float64)
            else:
                columns[name] = [None if v != v else v for v in column.tolist()]
        return FeatureColumns(len(frame), [columns.get(name) for name in feature_names])


def render_mlflow(scored: ScoredBatch) -> bytes:
    """``{"predictions": [{"churn_probability": p, "risk_level": level}, ...]}``: a pandas
    DataFrame answer as MLflow's scoring server writes it (records), without per-row objects."""
    return b'{"predictions":' + prediction_objects(scored.probabilities, scored.level_codes) + b"}"


_TENSOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": ["BYTES", "BOOL", *_NUMERIC_DTYPES]},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "data": {"type": "array"},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
        },
    },
    "required": ["name", "datatype", "shape"],
}

#: ``POST /v2/models/{name}/infer``, documented (parsed by :class:`OipInferBody`).
OIP_INFER_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "OipInferRequest",
    "description": (
        "Open Inference Protocol V2 inference request. `inputs`: one numeric `[N, F]` tensor in "
        "the model's feature order (see the model metadata), or one `[N]` tensor per named "
        "feature (missing features count as unknown; NaN is unknown). Outputs: "
        "`churn_probability` (FP64) and `risk_level` (BYTES)."
    ),
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "properties": {"binary_data_output": {"type": "boolean"}},
        },
        "inputs": {"type": "array", "minItems": 1, "items": _TENSOR_SCHEMA},
        "outputs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": list(_OUTPUTS)},
                    "parameters": {
                        "type": "object",
                        "properties": {"binary_data": {"type": "boolean"}},
                    },
                },
                "required": ["name"],
            },
        },
    },
    "required": ["inputs"],
    "examples": [
        {
            "inputs": [
                {
                    "name": "days_since_last_order",
                    "datatype": "FP64",
                    "shape": [2],
                    "data": [3, 180],
                },
                {"name": "email_open_rate", "datatype": "FP64", "shape": [2], "data": [0.5, 0.01]},
            ]
        }
    ],
}

#: ``POST /invocations``, documented (parsed by :class:`MlflowBody`).
MLFLOW_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "MlflowInvocationRequest",
    "description": (
        "Exactly one of `dataframe_split` (pandas `to_dict(orient='split')`), "
        "`dataframe_records` (one object per row), `instances` or `inputs` (rows as objects "
        "or arrays in feature order, or an object of columns). Unknown column names are "
        "refused; missing ones count as unknown."
    ),
    "type": "object",
    "properties": {
        "dataframe_split": {
            "type": "object",
            "properties": {
                "columns": {"type": "array", "items": {"type": "string"}},
                "index": {"type": "array"},
                "data": {"type": "array", "items": {"type": "array"}},
            },
            "required": ["data"],
        },
        "dataframe_records": {"type": "array", "items": {"type": "object"}},
        "instances": {"type": ["array", "object"]},
        "inputs": {"type": ["array", "object"]},
        "params": {"type": "object"},
    },
    # Exactly one format (what the server enforces), said so that generated clients know.
    "oneOf": [{"required": [name]} for name in _MLFLOW_FORMATS],
    "examples": [
        {
            "dataframe_split": {
                "columns": ["days_since_last_order", "email_open_rate"],
                "data": [[3, 0.5], [180, 0.01]],
            }
        }
    ],
}
