"""The :class:`Scorer` protocol every served model implements, and its two implementations.

Serving asks three things of a model, whatever its kind:

* ``parse``: check the values given for its features and build its own input (a float matrix
  for the booster, a frame for a pipeline model);
* ``predict``: churn probabilities for that input;
* ``explain``: the probabilities and each row's top drivers, from one contributions pass.

:class:`BoosterScorer` serves a LightGBM booster over the online features (the global default):
probabilities are exactly ``booster.predict(X)`` and drivers are LightGBM's own SHAP values
(``pred_contrib=True``). :class:`PipelineScorer` serves a
:class:`~churn_prediction.training.model.TrainedModel` (calibrated logistic regression or
LightGBM), whose schema may hold text (categorical) attributes. Drivers are exact contributions to
the raw log-odds either way.

Pure, synchronous code: callers run it in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, TypeVar, cast

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from churn_prediction.training.model import TrainedModel
from churn_shared.contracts import FEATURE_NAMES

__all__ = [
    "RISK_LEVELS",
    "BoosterScorer",
    "DriverRow",
    "Explained",
    "FeatureColumns",
    "InvalidFeatureValueError",
    "PipelineScorer",
    "Scorer",
    "risk_level",
    "risk_level_array",
    "risk_level_codes",
    "risk_level_names",
    "risk_levels",
]

FloatArray = npt.NDArray[np.float64]
#: One feature's values: Python values, or a numeric NumPy array (a decoded tensor).
Column = Sequence[Any] | npt.NDArray[Any]
InputT = TypeVar("InputT")

_NUMERIC_TYPES = frozenset({int, float, type(None)})
_ATTRIBUTE_TYPES = frozenset({int, float, str, type(None)})


class InvalidFeatureValueError(ValueError):
    """A feature value the model cannot read (text for a numeric feature, say)."""


class DriverRow(TypedDict):
    """One feature's exact contribution (log-odds of the raw model output) to one score."""

    feature: str
    value: float | str | None
    contribution: float
    direction: Literal["increases_risk", "decreases_risk"]


@dataclass(frozen=True, slots=True)
class FeatureColumns:
    """Values to score, one column per feature in the scorer's order (``None``: not given, so
    unknown for every row); values are still unchecked (``Scorer.parse`` checks them). A column
    is a sequence of Python values or a numeric NumPy array (a decoded tensor, NaN: unknown)."""

    n: int
    columns: Sequence[Column | None]
    #: The same values as one ``n x F`` float64 matrix (C or Fortran order, writable), when they
    #: were read as one: a numeric scorer takes it as its input instead of copying the columns
    #: again (LightGBM reads either order as it is).
    matrix: FloatArray | None = None

    @classmethod
    def from_mappings(
        cls, rows: Sequence[Mapping[str, Any]], feature_names: Sequence[str]
    ) -> FeatureColumns:
        """One row per mapping; a name the mapping lacks is unknown (``None``) for that row."""
        return cls(len(rows), [[row.get(name) for row in rows] for name in feature_names])

    @classmethod
    def from_matrix(cls, matrix: npt.NDArray[Any]) -> FeatureColumns:
        """An ``n x F`` numeric matrix whose columns are the features, in the scorer's order."""
        n, width = matrix.shape
        contiguous = matrix.flags.c_contiguous or matrix.flags.f_contiguous
        whole = (
            matrix if matrix.dtype == np.float64 and contiguous and matrix.flags.writeable else None
        )
        return cls(n, [matrix[:, j] for j in range(width)], whole)


@dataclass(frozen=True, slots=True)
class Explained:
    probabilities: FloatArray
    drivers: list[list[DriverRow]]


class Scorer(Protocol[InputT]):
    """A served model: parse what a caller gives into the model's input, predict, explain."""

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features the model reads, in its order."""
        ...

    @property
    def numeric_only(self) -> bool:
        """Every feature is a number (no text attributes)."""
        ...

    def parse(self, columns: FeatureColumns) -> InputT:
        """The model's input for ``columns``; ``InvalidFeatureValueError`` on a value of a type
        the feature cannot take."""
        ...

    def predict(self, batch: InputT) -> FloatArray:
        """Churn probability per row."""
        ...

    def explain(self, batch: InputT, top_k: int) -> Explained:
        """Probabilities and each row's ``top_k`` drivers, largest absolute contribution first."""
        ...


def _float_matrix(columns: FeatureColumns, feature_names: Sequence[str]) -> FloatArray:
    """An ``n x F`` float64 matrix (missing → NaN); only numbers and nulls are accepted."""
    if columns.matrix is not None and columns.matrix.shape == (columns.n, len(feature_names)):
        return columns.matrix
    matrix = np.full((columns.n, len(feature_names)), np.nan, dtype=np.float64)
    for i, (name, column) in enumerate(zip(feature_names, columns.columns, strict=True)):
        if column is None:
            continue
        if isinstance(column, np.ndarray):
            if column.dtype.kind not in "fiu":
                raise InvalidFeatureValueError(f"Feature {name!r} is not a numeric tensor.")
            matrix[:, i] = column
            continue
        if not set(map(type, column)) <= _NUMERIC_TYPES:
            raise InvalidFeatureValueError(f"Feature {name!r} has a value that is not a number.")
        matrix[:, i] = np.asarray(column, dtype=np.float64)
    return matrix


def _top_drivers(
    names: Sequence[str],
    values: FloatArray,
    contributions: FloatArray,
    top_k: int,
    *,
    zero_increases: bool,
) -> list[list[DriverRow]]:
    """Each row's ``top_k`` features by absolute contribution (ties in feature order)."""
    k = max(0, min(top_k, len(names)))
    order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, :k]
    drivers: list[list[DriverRow]] = []
    for i in range(values.shape[0]):
        row: list[DriverRow] = []
        for j in order[i].tolist():
            c = float(contributions[i, j])
            value = float(values[i, j])
            increases = c > 0 or (zero_increases and c == 0)
            row.append(
                {
                    "feature": names[j],
                    "value": None if math.isnan(value) else value,
                    "contribution": c,
                    "direction": "increases_risk" if increases else "decreases_risk",
                }
            )
        drivers.append(row)
    return drivers


class BoosterScorer:
    """A LightGBM binary booster over a fixed, ordered list of numeric features."""

    numeric_only = True

    def __init__(
        self,
        booster: lgb.Booster,
        feature_names: Sequence[str] = FEATURE_NAMES,
        *,
        num_threads: int = 1,
    ) -> None:
        self.booster = booster
        self.feature_names: tuple[str, ...] = tuple(feature_names)
        #: OpenMP threads per predict call. One is fastest on a shared 2-core machine: more
        #: threads spin-wait against the event loop and the other processes (values are equal).
        self.num_threads = num_threads

    def parse(self, columns: FeatureColumns) -> FloatArray:
        return _float_matrix(columns, self.feature_names)

    def predict(self, batch: FloatArray) -> FloatArray:
        """Churn probabilities, exactly ``booster.predict(batch)``."""
        result: FloatArray = np.asarray(
            self.booster.predict(batch, num_threads=self.num_threads), dtype=np.float64
        )
        return result

    def explain(self, batch: FloatArray, top_k: int) -> Explained:
        contributions = self.contributions(batch)
        drivers = _top_drivers(
            self.feature_names,
            batch,
            contributions[:, : len(self.feature_names)],
            top_k,
            zero_increases=False,
        )
        return Explained(self.predict(batch), drivers)

    def predict_raw(self, batch: FloatArray) -> FloatArray:
        """Raw scores (log-odds)."""
        result: FloatArray = np.asarray(
            self.booster.predict(batch, raw_score=True, num_threads=self.num_threads),
            dtype=np.float64,
        )
        return result

    def contributions(self, batch: FloatArray) -> FloatArray:
        """SHAP contributions per feature, with the bias as the last column (log-odds)."""
        result: FloatArray = np.asarray(
            self.booster.predict(batch, pred_contrib=True, num_threads=self.num_threads),
            dtype=np.float64,
        )
        return result

    def to_string(self) -> str:
        text: str = self.booster.model_to_string()
        return text

    @classmethod
    def from_string(
        cls, text: str, feature_names: Sequence[str] | None = None, *, num_threads: int = 1
    ) -> BoosterScorer:
        booster = lgb.Booster(model_str=text)
        names = list(feature_names) if feature_names else list(booster.feature_name())
        return cls(booster, names, num_threads=num_threads)


class PipelineScorer:
    """A :class:`~churn_prediction.training.model.TrainedModel` served through :class:`Scorer`.

    Its input is a frame in schema order. For an all-numeric schema that frame is float64 and
    already canonical, so scoring skips the canonicalisation; a schema with text attributes
    takes numbers, text or null per value and is canonicalised by the model.
    """

    def __init__(self, trained: TrainedModel) -> None:
        self.trained = trained
        self.feature_names: tuple[str, ...] = tuple(trained.feature_names)
        self.numeric_only = not trained.schema.categorical

    def parse(self, columns: FeatureColumns) -> pd.DataFrame:
        names = list(self.feature_names)
        if self.numeric_only:
            return pd.DataFrame(_float_matrix(columns, names), columns=names)
        data: dict[str, Sequence[Any]] = {}
        for name, column in zip(names, columns.columns, strict=True):
            if column is None:
                column = [None] * columns.n
            elif isinstance(column, np.ndarray):
                column = [None if v != v else v for v in column.tolist()]
            elif any(type(v) not in _ATTRIBUTE_TYPES for v in column):
                raise InvalidFeatureValueError(f"Column {name!r} holds a value of another type.")
            data[name] = column
        return pd.DataFrame(data, columns=names)

    def predict(self, batch: pd.DataFrame) -> FloatArray:
        if self.numeric_only:
            return self.trained.calibrate(self.trained.canonical_margin(batch))
        return self.trained.predict_proba(batch)

    def explain(self, batch: pd.DataFrame, top_k: int) -> Explained:
        """One contributions pass gives both: the margin is their sum plus the bias (exact)."""
        trained = self.trained
        if not self.numeric_only:
            drivers = cast("list[list[DriverRow]]", trained.explain(batch, top_k))
            return Explained(trained.predict_proba(batch), drivers)
        contributions, bias = trained.canonical_contributions(batch)
        probabilities = trained.calibrate(contributions.sum(axis=1) + bias)
        values = batch.to_numpy(dtype=np.float64)
        return Explained(
            probabilities,
            _top_drivers(self.feature_names, values, contributions, top_k, zero_increases=True),
        )


def risk_level(probability: float, low_risk_below: float, high_risk_from: float) -> str:
    """``low`` < ``low_risk_below`` ≤ ``medium`` < ``high_risk_from`` ≤ ``high``."""
    if probability >= high_risk_from:
        return "high"
    if probability >= low_risk_below:
        return "medium"
    return "low"


#: The risk levels in the order of their codes (:func:`risk_level_codes`).
RISK_LEVELS: tuple[str, str, str] = ("low", "medium", "high")
_RISK_LEVEL_NAMES = np.array(RISK_LEVELS)


def risk_level_codes(
    probabilities: FloatArray, low_risk_below: float, high_risk_from: float
) -> npt.NDArray[np.uint8]:
    """:func:`risk_level` of every probability as its index in :data:`RISK_LEVELS` (0 low,
    1 medium, 2 high): one byte per row, which renderers map to their own bytes at once."""
    codes = (probabilities >= low_risk_below).view(np.uint8).copy()
    codes[probabilities >= high_risk_from] = 2
    return codes


def risk_level_names(codes: npt.NDArray[np.uint8]) -> npt.NDArray[np.str_]:
    """The levels of :func:`risk_level_codes`, as a NumPy string array."""
    levels: npt.NDArray[np.str_] = _RISK_LEVEL_NAMES[codes]
    return levels


def risk_level_array(
    probabilities: FloatArray, low_risk_below: float, high_risk_from: float
) -> npt.NDArray[np.str_]:
    """:func:`risk_level` of every probability, as a NumPy string array (no per-row objects)."""
    return risk_level_names(risk_level_codes(probabilities, low_risk_below, high_risk_from))


def risk_levels(
    probabilities: FloatArray, low_risk_below: float, high_risk_from: float
) -> list[str]:
    """:func:`risk_level` of every probability, vectorised."""
    levels: list[str] = risk_level_array(probabilities, low_risk_below, high_risk_from).tolist()
    return levels
