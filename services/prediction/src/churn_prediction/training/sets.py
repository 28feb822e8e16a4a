"""Training sets: model-ready rows with a 0/1 label, and building one from a labelled table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn_prediction.training.features import to_category, to_number

IntArray = npt.NDArray[np.int64]

_POSITIVE_LABELS = frozenset(
    {"1", "yes", "y", "true", "t", "churn", "churned", "left", "lost", "cancelled", "canceled"}
)
_NEGATIVE_LABELS = frozenset(
    {"0", "no", "n", "false", "f", "stayed", "retained", "active", "not churned", "no churn"}
)


@dataclass(frozen=True)
class TrainingSet:
    """Model-ready rows: features, a 0/1 label, and where the label came from.

    ``groups_time`` (one cutoff date per row, any sortable dtype) switches cross-validation to
    time-ordered splits. ``excluded_columns`` records columns left out and why. ``horizon_days``
    is the label's horizon for point-in-time sets (``None`` for imported labels).
    """

    X: pd.DataFrame
    y: IntArray
    feature_names: list[str]
    categorical: list[str]
    groups_time: npt.NDArray[Any] | None = None
    label_source: str = ""
    excluded_columns: dict[str, str] = field(default_factory=dict)
    #: The label's horizon (no order within it = churned), for the BG/NBD baseline and feature.
    horizon_days: int | None = None

    def __post_init__(self) -> None:
        if len(self.X) != len(self.y):
            raise ValueError(f"X has {len(self.X)} rows but y has {len(self.y)}")
        if self.groups_time is not None and len(self.groups_time) != len(self.y):
            raise ValueError("groups_time must have one entry per row")
        unknown = [c for c in self.categorical if c not in self.feature_names]
        if unknown:
            raise ValueError(f"categorical columns not among the features: {unknown}")
        missing = [c for c in self.feature_names if c not in self.X.columns]
        if missing:
            raise ValueError(f"feature columns missing from X: {missing}")


def map_label(values: pd.Series, label: str = "label") -> IntArray:
    """Map a label column to 0/1.

    Accepts booleans, the numbers 0/1, and (case-insensitively) yes/no, true/false, y/n, t/f,
    churn(ed)/stayed/retained/active and the like. Raises ``ValueError`` naming the offending
    values otherwise, or when labels are missing.
    """
    if values.isna().any():
        raise ValueError(
            f"label column {label!r} has {int(values.isna().sum())} missing value(s); "
            "drop or fill those rows first"
        )
    out = np.empty(len(values), dtype=np.int64)
    unknown: list[str] = []
    for i, raw in enumerate(values.tolist()):
        key = _label_key(raw)
        if key in _POSITIVE_LABELS:
            out[i] = 1
        elif key in _NEGATIVE_LABELS:
            out[i] = 0
        else:
            out[i] = -1
            if len(unknown) < 5 and repr(raw) not in unknown:
                unknown.append(repr(raw))
    if (out < 0).any():
        raise ValueError(
            f"label column {label!r} has values that are not a yes/no churn label: "
            f"{', '.join(unknown)} (expected 1/0, true/false, yes/no, churned/retained)"
        )
    return out


def _label_key(raw: object) -> str:
    if isinstance(raw, bool | np.bool_):
        return "1" if raw else "0"
    if isinstance(raw, int | float | np.integer | np.floating):
        number = float(raw)
        if number in (0.0, 1.0):
            return str(int(number))
        return str(raw)
    return str(raw).strip().lower()


def _parses_as_numbers(series: pd.Series) -> bool:
    text = series.dropna().astype(str).str.strip()
    text = text[text != ""]
    if text.empty:
        return False
    parsed = pd.to_numeric(text, errors="coerce")
    return bool(parsed.notna().all())


def labelled_training_set(
    df: pd.DataFrame,
    label: str,
    id_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
) -> TrainingSet:
    """Build a :class:`TrainingSet` from a labelled table (one row per customer).

    The id and label columns are never features. Without ``feature_columns`` every other column
    is used, except datetime columns and text columns whose every value is distinct (these look
    like identifiers); both are listed in ``excluded_columns``. Numeric and boolean columns are
    numeric; text columns whose non-blank values all parse as numbers (such as Telco's
    ``TotalCharges`` with blanks) become numeric with NaN for the blanks; other columns are
    categorical. Columns named in ``feature_columns`` are used as given.
    """
    if label not in df.columns:
        raise ValueError(f"label column {label!r} not found; columns are {list(df.columns)}")
    if id_column is not None and id_column not in df.columns:
        raise ValueError(f"id column {id_column!r} not found; columns are {list(df.columns)}")
    y = map_label(df[label], label)
    excluded: dict[str, str] = {}
    if feature_columns is not None:
        candidates = list(feature_columns)
        missing = [c for c in candidates if c not in df.columns]
        if missing:
            raise ValueError(f"feature columns not found: {missing}")
        if label in candidates or (id_column is not None and id_column in candidates):
            raise ValueError("the label and id columns cannot be features")
        explicit = True
    else:
        candidates = [c for c in df.columns if c not in (label, id_column)]
        explicit = False
    names: list[str] = []
    categorical: list[str] = []
    columns: dict[str, pd.Series] = {}
    for name in candidates:
        series = df[name]
        if pd.api.types.is_datetime64_any_dtype(series):
            excluded[name] = "datetime column (derive numeric features such as days since)"
            continue
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            columns[name] = pd.to_numeric(series, errors="coerce").astype(np.float64)
        elif _parses_as_numbers(series):
            columns[name] = to_number(series, name)
        else:
            if not explicit and len(df) > 50 and series.nunique(dropna=True) == len(df):
                excluded[name] = "every value distinct (looks like an identifier)"
                continue
            columns[name] = to_category(series)
            categorical.append(name)
        names.append(str(name))
    if not names:
        raise ValueError("no usable feature columns")
    X = pd.DataFrame(columns, index=pd.RangeIndex(len(df)))
    positives = int(y.sum())
    source = f"label column {label!r} ({positives} of {len(y)} positive)"
    return TrainingSet(
        X=X,
        y=y,
        feature_names=names,
        categorical=categorical,
        label_source=source,
        excluded_columns=excluded,
    )
