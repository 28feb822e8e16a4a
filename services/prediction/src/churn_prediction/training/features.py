"""The feature schema a model reads, and how raw values become its numbers and categories."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

_SMALL_FRAME_ROWS = 256  # below this, plain Python per value beats vectorised pandas calls


def to_number(series: pd.Series, name: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return pd.to_numeric(series, errors="coerce").astype(np.float64).reset_index(drop=True)
    values: list[float] = []
    bad: list[str] = []
    for raw in series.tolist():
        if raw is None or (isinstance(raw, float) and math.isnan(raw)):
            values.append(math.nan)
            continue
        if isinstance(raw, bool | np.bool_):
            values.append(float(raw))
            continue
        text = str(raw).strip()
        if text == "" or text.lower() in ("nan", "null", "none", "na", "n/a"):
            values.append(math.nan)
            continue
        try:
            values.append(float(text))
        except ValueError:
            values.append(math.nan)
            if len(bad) < 3:
                bad.append(repr(raw))
    if bad:
        raise ValueError(f"column {name!r} expects numbers; got {', '.join(bad)}")
    return pd.Series(values, dtype=np.float64)


def _category_text(raw: object) -> object:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or raw is pd.NA:
        return np.nan
    if isinstance(raw, float | np.floating) and float(raw).is_integer():
        return str(int(raw))
    text = str(raw).strip()
    return text if text else np.nan


def to_category(series: pd.Series) -> pd.Series:
    """Text categories (stripped; blank means missing, as NaN); integral numbers as ``"3"``."""
    per_value = (
        len(series) <= _SMALL_FRAME_ROWS
        or pd.api.types.is_numeric_dtype(series)
        or (
            series.dtype == object
            and any(isinstance(v, float | np.floating) for v in series.head(1000).tolist())
        )
    )
    if per_value:
        return pd.Series([_category_text(v) for v in series.tolist()], dtype=object)
    text = series.astype("string").str.strip()
    text = text.mask(text == "")
    return pd.Series(text.astype(object).where(text.notna(), np.nan).to_numpy(), dtype=object)


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "dtype": "float64" if self.kind == "numeric" else "string",
        }
        if self.kind == "categorical":
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class FeatureSchema:
    """The columns a model needs, in order, with their kind and training categories."""

    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    def as_dict(self) -> dict[str, Any]:
        return {"features": [f.as_dict() for f in self.features]}

    @classmethod
    def infer(
        cls, X: pd.DataFrame, feature_names: Sequence[str], categorical: Sequence[str]
    ) -> FeatureSchema:
        """The schema of training rows ``X``: ``categorical`` columns with the categories seen."""
        specs: list[FeatureSpec] = []
        for name in feature_names:
            if name in categorical:
                values = to_category(X[name]).dropna().unique().tolist()
                specs.append(FeatureSpec(name, "categorical", tuple(sorted(map(str, values)))))
            else:
                specs.append(FeatureSpec(name, "numeric"))
        return cls(tuple(specs))

    def validate(self, df: pd.DataFrame) -> None:
        """Raise ``ValueError`` listing every required column ``df`` lacks."""
        missing = [n for n in self.names if n not in df.columns]
        if missing:
            raise ValueError(
                f"missing feature column(s): {', '.join(missing)} "
                f"(the model needs {', '.join(self.names)})"
            )

    def canonical(self, df: pd.DataFrame) -> pd.DataFrame:
        """Columns in schema order: numbers as float64 (NaN when missing), categories as text.

        Missing values are allowed anywhere; unseen categories are kept (the encoders ignore
        them). Non-numeric text in a numeric column raises ``ValueError``.
        """
        self.validate(df)
        columns: dict[str, pd.Series] = {}
        for spec in self.features:
            series = df[spec.name]
            if spec.kind == "numeric":
                columns[spec.name] = to_number(series, spec.name)
            else:
                columns[spec.name] = to_category(series)
        return pd.DataFrame(columns, index=pd.RangeIndex(len(df)))

    def category_codes(self, canonical: pd.DataFrame) -> FloatArray:
        """Encode a canonical frame for LightGBM: numbers as is, categories as their index in
        the training categories (NaN for missing or unseen)."""
        matrix = np.empty((len(canonical), len(self.features)), dtype=np.float64)
        for j, spec in enumerate(self.features):
            if spec.kind == "numeric":
                matrix[:, j] = canonical[spec.name].to_numpy(dtype=np.float64)
            else:
                values = canonical[spec.name]
                if len(values) <= _SMALL_FRAME_ROWS:
                    lookup = {c: float(i) for i, c in enumerate(spec.categories)}
                    matrix[:, j] = [lookup.get(v, math.nan) for v in values.tolist()]
                else:
                    codes = pd.Categorical(values, categories=spec.categories).codes
                    matrix[:, j] = np.where(codes < 0, math.nan, codes)
        return matrix
