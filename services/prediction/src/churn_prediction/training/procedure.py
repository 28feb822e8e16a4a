"""Train, calibrate and explain churn models on tabular training sets.

Everything here is plain, CPU-bound, synchronous code with no I/O: the service runs it in a
thread or process pool, the CLI calls it directly.

Procedure (:func:`train`):

1. Two candidates are compared by cross-validation on the same folds: a regularised logistic
   regression (median imputation + scaling for numbers, one-hot for categories) and LightGBM
   (native categorical splits, fixed seed, deterministic, 2 threads). Folds are stratified
   5-fold (shuffled, seeded), or time-ordered (train on earlier cutoffs, test on a later one)
   when the training set carries ``groups_time`` with at least two distinct cutoffs.
2. The winner is the candidate with the higher out-of-fold PR-AUC (average precision).
3. The winner is calibrated on its out-of-fold raw scores (the same scheme as scikit-learn's
   ``CalibratedClassifierCV(ensemble=False)``): sigmoid (Platt) and isotonic are both estimated by
   cross-validation over the out-of-fold scores, and the one with the lower Brier score is kept.
   Should neither beat the uncalibrated scores, the identity (``"none"``) is kept, so the reported
   calibrated Brier score is never worse than the uncalibrated one.
4. The served model is the winner refitted on all rows plus that calibrator. All reported figures
   (ROC-AUC, PR-AUC, Brier, calibration table, precision/recall at the threshold) are
   out-of-fold, never in-sample.

Explanations (:meth:`TrainedModel.explain`) are exact additive contributions to the model's raw,
uncalibrated output (log-odds): TreeSHAP (LightGBM ``pred_contrib``) for the tree model and
``coef * (x - mean(x))`` per one-hot/scaled column, summed per original feature, for the linear
model. ``contributions.sum(axis=1) + bias == raw_margin``. The calibrator is monotone, so a
positive contribution always pushes the probability up.

Leakage is the caller's responsibility: columns recorded after the label was known (for example a
"cancellation date" or "reason for leaving") must not be passed as features. The leakage test
(shuffled labels give ROC-AUC ~ 0.5) guards against leakage introduced by this code, such as
resampling or fitting preprocessing before the split.
"""

from __future__ import annotations

import io
import math
import pickle
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

__all__ = [
    "FORMAT_VERSION",
    "ModelName",
    "ProgressCallback",
    "TrainedModel",
    "TrainingSet",
    "labelled_training_set",
    "model_card",
    "train",
    "train_labelled",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ModelName = Literal["logistic_regression", "lightgbm"]
CalibrationMethod = Literal["sigmoid", "isotonic", "none"]
ProgressCallback = Callable[[float, str], None]

FORMAT_VERSION = 1
_ARTIFACT_KIND = "churn-prediction-model"
_MISSING_CATEGORY = "__missing__"
_TWO_THREADS_FROM_ROWS = 50_000
_SMALL_FRAME_ROWS = 256  # below this, plain Python per value beats vectorised pandas calls
_POSITIVE_LABELS = frozenset(
    {"1", "yes", "y", "true", "t", "churn", "churned", "left", "lost", "cancelled", "canceled"}
)
_NEGATIVE_LABELS = frozenset(
    {"0", "no", "n", "false", "f", "stayed", "retained", "active", "not churned", "no churn"}
)


# --------------------------------------------------------------------------- training sets


@dataclass(frozen=True)
class TrainingSet:
    """Model-ready rows: features, a 0/1 label, and where the label came from.

    ``groups_time`` (one cutoff date per row, any sortable dtype) switches cross-validation to
    time-ordered splits. ``excluded_columns`` records columns left out and why.
    """

    X: pd.DataFrame
    y: IntArray
    feature_names: list[str]
    categorical: list[str]
    groups_time: npt.NDArray[Any] | None = None
    label_source: str = ""
    excluded_columns: dict[str, str] = field(default_factory=dict)

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
            columns[name] = _to_number(series, name)
        else:
            if not explicit and len(df) > 50 and series.nunique(dropna=True) == len(df):
                excluded[name] = "every value distinct (looks like an identifier)"
                continue
            columns[name] = _to_category(series)
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


def _to_number(series: pd.Series, name: str) -> pd.Series:
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


def _to_category(series: pd.Series) -> pd.Series:
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


# --------------------------------------------------------------------------- schema


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
    def from_training_set(cls, ts: TrainingSet) -> FeatureSchema:
        specs: list[FeatureSpec] = []
        for name in ts.feature_names:
            if name in ts.categorical:
                values = _to_category(ts.X[name]).dropna().unique().tolist()
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
                columns[spec.name] = _to_number(series, spec.name)
            else:
                columns[spec.name] = _to_category(series)
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


# --------------------------------------------------------------------------- candidates


class _Candidate(ABC):
    """One model family: fit on a canonical frame, give raw margins and contributions."""

    name: ModelName

    def __init__(self, schema: FeatureSchema, seed: int) -> None:
        self.schema = schema
        self.seed = seed

    @abstractmethod
    def fit(self, X: pd.DataFrame, y: IntArray) -> _Candidate: ...

    @abstractmethod
    def margin(self, X: pd.DataFrame) -> FloatArray: ...

    @abstractmethod
    def contributions(self, X: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Per-feature contributions (n x p, schema order) and the bias (n,)."""
        ...

    @abstractmethod
    def importance(self) -> dict[str, float]: ...


class _LogisticCandidate(_Candidate):
    name: ModelName = "logistic_regression"

    def __init__(self, schema: FeatureSchema, seed: int) -> None:
        super().__init__(schema, seed)
        self.pipeline: Pipeline | None = None
        self.column_feature: IntArray = np.empty(0, dtype=np.int64)
        self.column_mean: FloatArray = np.empty(0, dtype=np.float64)
        self.mean_abs_contribution: FloatArray = np.empty(0, dtype=np.float64)

    def _build(self) -> Pipeline:
        transformers: list[tuple[str, Any, list[str]]] = []
        if self.schema.numeric:
            numeric = Pipeline(
                [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
            )
            transformers.append(("num", numeric, self.schema.numeric))
        if self.schema.categorical:
            categorical = Pipeline(
                [
                    (
                        "impute",
                        SimpleImputer(strategy="constant", fill_value=_MISSING_CATEGORY),
                    ),
                    ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                ]
            )
            transformers.append(("cat", categorical, self.schema.categorical))
        prep = ColumnTransformer(transformers, sparse_threshold=0.0)
        model = LogisticRegression(C=1.0, max_iter=5000, random_state=self.seed)
        return Pipeline([("prep", prep), ("model", model)])

    def fit(self, X: pd.DataFrame, y: IntArray) -> _LogisticCandidate:
        pipeline = self._build()
        pipeline.fit(X, y)
        self.pipeline = pipeline
        index = {name: j for j, name in enumerate(self.schema.names)}
        sources = [index[n] for n in self.schema.numeric]
        if self.schema.categorical:
            encoder = pipeline.named_steps["prep"].named_transformers_["cat"]
            for name, cats in zip(
                self.schema.categorical, encoder.named_steps["onehot"].categories_, strict=True
            ):
                sources.extend([index[name]] * len(cats))
        self.column_feature = np.asarray(sources, dtype=np.int64)
        transformed = np.asarray(pipeline.named_steps["prep"].transform(X), dtype=np.float64)
        self.column_mean = transformed.mean(axis=0)
        contrib, _ = self.contributions(X)
        self.mean_abs_contribution = np.abs(contrib).mean(axis=0)
        return self

    def _fitted(self) -> Pipeline:
        if self.pipeline is None:
            raise RuntimeError("model is not fitted")
        return self.pipeline

    def margin(self, X: pd.DataFrame) -> FloatArray:
        return np.asarray(self._fitted().decision_function(X), dtype=np.float64)

    def contributions(self, X: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        pipeline = self._fitted()
        model = pipeline.named_steps["model"]
        coef = np.asarray(model.coef_[0], dtype=np.float64)
        intercept = float(model.intercept_[0])
        z = np.asarray(pipeline.named_steps["prep"].transform(X), dtype=np.float64)
        per_column = (z - self.column_mean) * coef
        contrib = np.zeros((len(X), len(self.schema.features)), dtype=np.float64)
        np.add.at(contrib.T, self.column_feature, per_column.T)
        bias = np.full(len(X), intercept + float(self.column_mean @ coef), dtype=np.float64)
        return contrib, bias

    def importance(self) -> dict[str, float]:
        """Mean absolute linear contribution per original feature on the training rows:
        |coef| weighted by how much the (scaled or one-hot) column varies."""
        return _normalised(self.schema.names, self.mean_abs_contribution)


class _LightGBMCandidate(_Candidate):
    name: ModelName = "lightgbm"

    def __init__(self, schema: FeatureSchema, seed: int) -> None:
        super().__init__(schema, seed)
        self.model: Any = None
        self.threads = 1

    def _build(self) -> Any:
        from lightgbm import LGBMClassifier

        return LGBMClassifier(
            # 100 shallow trees: as accurate as 200 deeper ones on Telco (CV), and TreeSHAP
            # explanations cost half as much.
            n_estimators=100,
            learning_rate=0.06,
            max_depth=4,
            num_leaves=15,
            min_child_samples=30,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            reg_lambda=1.0,
            cat_smooth=10.0,
            min_data_per_group=50,
            random_state=self.seed,
            n_jobs=self.threads,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )

    def _matrix(self, X: pd.DataFrame) -> FloatArray:
        return self.schema.category_codes(X)

    def fit(self, X: pd.DataFrame, y: IntArray) -> _LightGBMCandidate:
        # Below ~50k rows a second OpenMP thread does not pay for its synchronisation, and on a
        # busy 2-core host it made training 2-10x slower (measured); larger sets use 2.
        self.threads = 1 if len(X) < _TWO_THREADS_FROM_ROWS else 2
        categorical = [j for j, s in enumerate(self.schema.features) if s.kind == "categorical"]
        model = self._build()
        model.fit(
            self._matrix(X),
            y,
            categorical_feature=categorical or "auto",
        )
        self.model = model
        return self

    def _fitted(self) -> Any:
        if self.model is None:
            raise RuntimeError("model is not fitted")
        return self.model

    def margin(self, X: pd.DataFrame) -> FloatArray:
        return np.asarray(self._fitted().predict(self._matrix(X), raw_score=True), np.float64)

    def contributions(self, X: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        raw = np.asarray(self._fitted().predict(self._matrix(X), pred_contrib=True), np.float64)
        return raw[:, :-1], raw[:, -1]

    def importance(self) -> dict[str, float]:
        gain = self._fitted().booster_.feature_importance(importance_type="gain")
        return _normalised(self.schema.names, np.asarray(gain, dtype=np.float64))


_CANDIDATES: dict[ModelName, type[_Candidate]] = {
    "logistic_regression": _LogisticCandidate,
    "lightgbm": _LightGBMCandidate,
}


def _normalised(names: list[str], weights: FloatArray) -> dict[str, float]:
    total = float(weights.sum())
    scaled = weights / total if total > 0 else weights
    pairs = sorted(zip(names, scaled.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    return {name: round(float(w), 6) for name, w in pairs}


# --------------------------------------------------------------------------- calibration


class _Calibrator:
    """Monotone map from a raw margin (log-odds) to a probability."""

    def __init__(self, method: CalibrationMethod) -> None:
        self.method: CalibrationMethod = method
        self._model: Any = None

    def fit(self, margin: FloatArray, y: IntArray) -> _Calibrator:
        if self.method == "sigmoid":
            self._model = LogisticRegression(C=1e6, max_iter=1000).fit(margin[:, None], y)
        elif self.method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            self._model = iso.fit(margin, y)
        return self

    def __call__(self, margin: FloatArray) -> FloatArray:
        if self.method == "sigmoid":
            return np.asarray(self._model.predict_proba(margin[:, None])[:, 1], np.float64)
        if self.method == "isotonic":
            return np.asarray(self._model.predict(margin), dtype=np.float64)
        return _sigmoid(margin)

    def describe(self) -> dict[str, Any]:
        if self.method == "sigmoid":
            return {
                "method": "sigmoid",
                "slope": float(self._model.coef_[0][0]),
                "intercept": float(self._model.intercept_[0]),
            }
        return {"method": self.method}


def _sigmoid(margin: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-margin)), dtype=np.float64)


# --------------------------------------------------------------------------- the model


@dataclass
class TrainedModel:
    """A fitted, calibrated churn model with its schema and cross-validated report.

    ``metrics`` holds the out-of-fold figures (see :func:`train`). Scoring input is any frame
    holding the schema's columns (extra columns are ignored).
    """

    model_name: ModelName
    schema: FeatureSchema
    metrics: dict[str, Any]
    _candidate: _Candidate
    _calibrator: _Calibrator

    @property
    def feature_schema(self) -> dict[str, Any]:
        return self.schema.as_dict()

    @property
    def feature_names(self) -> list[str]:
        return self.schema.names

    def validate_schema(self, df: pd.DataFrame) -> None:
        """Raise ``ValueError`` listing the required columns that ``df`` lacks."""
        self.schema.validate(df)

    def raw_margin(self, df: pd.DataFrame) -> FloatArray:
        """The uncalibrated model output in log-odds (what contributions add up to)."""
        return self._candidate.margin(self.schema.canonical(df))

    def predict_proba(self, df: pd.DataFrame) -> FloatArray:
        """Calibrated churn probability per row."""
        return self._calibrator(self.raw_margin(df))

    def contributions(self, df: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Exact per-feature contributions (rows x features, schema order) and the bias per row;
        ``contrib.sum(axis=1) + bias`` equals :meth:`raw_margin`."""
        return self._candidate.contributions(self.schema.canonical(df))

    def explain(self, df: pd.DataFrame, top_k: int = 3) -> list[list[dict[str, Any]]]:
        """Top ``top_k`` drivers per row by absolute contribution.

        Each driver: ``{feature, value, contribution, direction}`` where ``value`` is the input
        value (float, text or ``None``), ``contribution`` is in log-odds of the raw model and
        ``direction`` is ``"increases_risk"`` or ``"decreases_risk"``.
        """
        canonical = self.schema.canonical(df)
        contrib, _ = self._candidate.contributions(canonical)
        names = self.schema.names
        k = max(0, min(top_k, len(names)))
        if k == 0:
            return [[] for _ in range(len(canonical))]
        order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        columns = [canonical[n].tolist() for n in names]
        out: list[list[dict[str, Any]]] = []
        for i in range(len(canonical)):
            drivers: list[dict[str, Any]] = []
            for j in order[i].tolist():
                c = float(contrib[i, j])
                drivers.append(
                    {
                        "feature": names[j],
                        "value": _json_value(columns[j][i]),
                        "contribution": c,
                        "direction": "increases_risk" if c >= 0 else "decreases_risk",
                    }
                )
            out.append(drivers)
        return out

    def to_bytes(self) -> bytes:
        """Serialise with pickle under a format header.

        Only load artifacts this platform wrote (trusted storage): unpickling runs code.
        """
        buffer = io.BytesIO()
        pickle.dump(
            {"kind": _ARTIFACT_KIND, "format_version": FORMAT_VERSION, "model": self},
            buffer,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainedModel:
        """Load what :meth:`to_bytes` wrote (trusted artifacts only: this unpickles)."""
        payload = _ArtifactUnpickler(io.BytesIO(data)).load()
        if not isinstance(payload, dict) or payload.get("kind") != _ARTIFACT_KIND:
            raise ValueError("not a churn model artifact")
        version = payload.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"unsupported model artifact format {version!r} (expected {FORMAT_VERSION})"
            )
        model = payload["model"]
        if not isinstance(model, cls) or not model.schema.features:
            raise ValueError("model artifact has no feature schema")
        return model


#: Where artifacts written before the training package was split name its classes.
_LEGACY_MODULE = "churn_prediction.training"


class _ArtifactUnpickler(pickle.Unpickler):
    """Unpickles artifacts (trusted: they come from our own registry), resolving the classes of
    artifacts written when this code lived in the module ``churn_prediction.training``."""

    def find_class(self, module: str, name: str) -> Any:
        if module == _LEGACY_MODULE:
            module = __name__
        return super().find_class(module, name)


def _json_value(value: object) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, int | np.integer):
        return float(value)
    return str(value)


# --------------------------------------------------------------------------- training


def _folds(
    ts: TrainingSet, n_splits: int, seed: int
) -> tuple[list[tuple[IntArray, IntArray]], str]:
    if ts.groups_time is not None:
        times = np.asarray(ts.groups_time)
        unique = np.unique(times)
        if len(unique) >= 2:
            folds: list[tuple[IntArray, IntArray]] = []
            for cutoff in unique[-min(n_splits, len(unique) - 1) :]:
                train_idx = np.flatnonzero(times < cutoff).astype(np.int64)
                test_idx = np.flatnonzero(times == cutoff).astype(np.int64)
                if len(np.unique(ts.y[train_idx])) == 2 and len(test_idx) > 0:
                    folds.append((train_idx, test_idx))
            if folds:
                return folds, f"time-ordered ({len(folds)} folds: train before, test at cutoff)"
    minority = int(min(ts.y.sum(), len(ts.y) - ts.y.sum()))
    k = min(n_splits, minority)
    if k < 2:
        raise ValueError(
            f"need at least 2 examples of each class to cross-validate, got {minority}"
        )
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    split = splitter.split(np.zeros(len(ts.y)), ts.y)
    return [(a.astype(np.int64), b.astype(np.int64)) for a, b in split], f"stratified {k}-fold"


def _scores(y: IntArray, p: FloatArray) -> dict[str, float]:
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else math.nan,
        "pr_auc": float(average_precision_score(y, p)) if both else math.nan,
        "brier": float(brier_score_loss(y, p)),
    }


def calibration_table(y: IntArray, p: FloatArray, bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width probability bins: mean predicted, observed churn rate, row count."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1], right=False), 0, bins - 1)
    table: list[dict[str, Any]] = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        table.append(
            {
                "bin_lower": round(float(edges[b]), 2),
                "bin_upper": round(float(edges[b + 1]), 2),
                "mean_predicted": float(p[mask].mean()) if count else None,
                "observed_rate": float(y[mask].mean()) if count else None,
                "count": count,
            }
        )
    return table


def threshold_metrics(y: IntArray, p: FloatArray, threshold: float) -> dict[str, Any]:
    """Precision/recall/flagged share when alerting at ``p >= threshold``."""
    flagged = p >= threshold
    tp = int((flagged & (y == 1)).sum())
    n_flagged = int(flagged.sum())
    positives = int((y == 1).sum())
    return {
        "threshold": threshold,
        "precision": tp / n_flagged if n_flagged else None,
        "recall": tp / positives if positives else None,
        "flagged_rate": n_flagged / len(y) if len(y) else None,
    }


def _oof_calibrated(
    margin: FloatArray, y: IntArray, fold_of: IntArray, method: CalibrationMethod
) -> FloatArray:
    """Calibrated out-of-fold probabilities: each fold's calibrator is fit on the other folds'
    out-of-fold margins, so no row is calibrated with its own label."""
    out = np.empty(len(margin), dtype=np.float64)
    for f in np.unique(fold_of).tolist():
        test = fold_of == f
        train_mask = ~test
        if method == "none" or len(np.unique(y[train_mask])) < 2:
            out[test] = _sigmoid(margin[test])
            continue
        calibrator = _Calibrator(method).fit(margin[train_mask], y[train_mask])
        out[test] = calibrator(margin[test])
    return out


def train(
    ts: TrainingSet,
    *,
    seed: int = 42,
    threshold: float = 0.7,
    n_splits: int = 5,
    candidates: Sequence[ModelName] = ("logistic_regression", "lightgbm"),
    progress: ProgressCallback | None = None,
) -> TrainedModel:
    """Compare candidates by cross-validation, pick by PR-AUC, calibrate, refit on all rows.

    ``progress(percent, stage)`` is called with percent in 0..100 at each stage.
    ``metrics`` of the result (all out-of-fold): ``roc_auc``, ``pr_auc``, ``brier``
    (calibrated), ``brier_uncalibrated``, ``calibration`` (method and parameters),
    ``calibration_table``, ``at_threshold`` (precision/recall), ``n_rows``, ``positive_rate``,
    ``candidates`` (per-candidate scores), ``model``, ``feature_importance``, ``seed``,
    ``cv``, ``label_source``, ``excluded_columns``, ``n_features``, ``duration_seconds``.
    """
    started = time.perf_counter()
    report = progress or (lambda _pct, _stage: None)
    if not candidates:
        raise ValueError("no candidate models")
    report(0.0, "preparing")
    schema = FeatureSchema.from_training_set(ts)
    X = schema.canonical(ts.X)
    y = np.asarray(ts.y, dtype=np.int64)
    folds, cv_description = _folds(ts, n_splits, seed)
    fold_of = np.full(len(y), -1, dtype=np.int64)
    for f, (_, test_idx) in enumerate(folds):
        fold_of[test_idx] = f
    evaluated = fold_of >= 0
    y_eval = y[evaluated]

    margins: dict[ModelName, FloatArray] = {}
    per_candidate: dict[str, dict[str, float]] = {}
    steps = len(candidates) * len(folds)
    done = 0
    for name in candidates:
        margin = np.full(len(y), math.nan, dtype=np.float64)
        for train_idx, test_idx in folds:
            report(5.0 + 75.0 * done / steps, f"cross-validating {name}")
            model = _CANDIDATES[name](schema, seed).fit(X.iloc[train_idx], y[train_idx])
            margin[test_idx] = model.margin(X.iloc[test_idx])
            done += 1
        margins[name] = margin
        per_candidate[name] = _scores(y_eval, _sigmoid(margin[evaluated]))

    chosen: ModelName = max(
        candidates, key=lambda n: (per_candidate[n]["pr_auc"], -candidates.index(n))
    )
    report(80.0, "calibrating")
    oof_margin = margins[chosen][evaluated]
    eval_folds = fold_of[evaluated]
    uncalibrated = _sigmoid(oof_margin)
    brier_uncalibrated = float(brier_score_loss(y_eval, uncalibrated))
    options: dict[CalibrationMethod, FloatArray] = {"none": uncalibrated}
    methods: tuple[CalibrationMethod, ...] = ("sigmoid", "isotonic", "none")
    for option in methods[:2]:
        options[option] = _oof_calibrated(oof_margin, y_eval, eval_folds, option)
    briers = {m: float(brier_score_loss(y_eval, p)) for m, p in options.items()}
    # Ties go to the earlier option: calibration is kept unless it makes the Brier score worse.
    method = min(methods, key=lambda m: briers[m])
    p_cal = options[method]

    report(85.0, f"fitting {chosen} on all rows")
    final = _CANDIDATES[chosen](schema, seed).fit(X, y)
    calibrator = _Calibrator(method).fit(oof_margin, y_eval)
    report(95.0, "reporting")

    scores = _scores(y_eval, p_cal)
    metrics: dict[str, Any] = {
        "model": chosen,
        "roc_auc": scores["roc_auc"],
        "pr_auc": scores["pr_auc"],
        "brier": scores["brier"],
        "brier_uncalibrated": brier_uncalibrated,
        "calibration": {**calibrator.describe(), "cv_brier": briers},
        "calibration_table": calibration_table(y_eval, p_cal),
        "at_threshold": threshold_metrics(y_eval, p_cal, threshold),
        "n_rows": len(y),
        "n_evaluated": int(evaluated.sum()),
        "positive_rate": float(y.mean()),
        "n_features": len(schema.features),
        "candidates": per_candidate,
        "feature_importance": final.importance(),
        "importance_kind": "gain" if chosen == "lightgbm" else "mean |linear contribution|",
        "seed": seed,
        "cv": cv_description,
        "label_source": ts.label_source,
        "excluded_columns": dict(ts.excluded_columns),
    }
    metrics["duration_seconds"] = round(time.perf_counter() - started, 3)
    report(100.0, "done")
    return TrainedModel(
        model_name=chosen,
        schema=schema,
        metrics=metrics,
        _candidate=final,
        _calibrator=calibrator,
    )


def train_labelled(
    df: pd.DataFrame,
    label: str,
    *,
    id_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    seed: int = 42,
    threshold: float = 0.7,
    progress: ProgressCallback | None = None,
) -> TrainedModel:
    """Train on a labelled table (see :func:`labelled_training_set` and :func:`train`)."""
    ts = labelled_training_set(df, label, id_column=id_column, feature_columns=feature_columns)
    return train(ts, seed=seed, threshold=threshold, progress=progress)


# --------------------------------------------------------------------------- model card


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _rows(header: Sequence[str], rows: Iterator[Sequence[str]] | list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(lines)


def model_card(trained: TrainedModel, title: str) -> str:
    """A Markdown model card: data, label, metrics, calibration, importance, use and caveats."""
    m = trained.metrics
    features = trained.schema.features
    importance: dict[str, float] = m.get("feature_importance", {})
    at = m.get("at_threshold", {})
    excluded: dict[str, str] = m.get("excluded_columns", {})
    parts = [
        f"# {title}",
        "",
        "## Model",
        f"* Chosen model: **{m['model']}** (highest cross-validated PR-AUC).",
        f"* Calibration: **{m['calibration']['method']}**, the lowest cross-validated Brier score "
        "among "
        + ", ".join(f"{k} {_fmt(v, 5)}" for k, v in m["calibration"]["cv_brier"].items())
        + " (`none` keeps the model's own probabilities when recalibrating does not help).",
        f"* Validation: {m['cv']}, seed {m['seed']}; every figure below is out-of-fold.",
        "",
        "## Data",
        f"* Rows: {m['n_rows']} (evaluated out-of-fold: {m['n_evaluated']}), "
        f"churn rate {_fmt(m['positive_rate'])}.",
        f"* Label: {m['label_source'] or 'not recorded'}.",
        f"* Features ({len(features)}): "
        + ", ".join(f"`{f.name}` ({f.kind})" for f in features)
        + ".",
    ]
    if excluded:
        parts.append(
            "* Excluded columns: " + "; ".join(f"`{k}`: {v}" for k, v in excluded.items()) + "."
        )
    parts += [
        "",
        "## Metrics (cross-validated)",
        _rows(
            ["model", "ROC-AUC", "PR-AUC", "Brier"],
            [
                [name, _fmt(s["roc_auc"]), _fmt(s["pr_auc"]), _fmt(s["brier"], 4)]
                for name, s in m["candidates"].items()
            ]
            + [
                [
                    f"**{m['model']} (calibrated)**",
                    _fmt(m["roc_auc"]),
                    _fmt(m["pr_auc"]),
                    _fmt(m["brier"], 4),
                ]
            ],
        ),
        "",
        f"Brier score before calibration: {_fmt(m['brier_uncalibrated'], 4)}; after: "
        f"{_fmt(m['brier'], 4)}. At the alert threshold {_fmt(at.get('threshold'), 2)}: "
        f"precision {_fmt(at.get('precision'))}, recall {_fmt(at.get('recall'))}, "
        f"{_fmt(at.get('flagged_rate'))} of customers flagged.",
        "",
        "## Calibration (out-of-fold, 10 bins)",
        _rows(
            ["predicted", "mean predicted", "observed churn rate", "customers"],
            [
                [
                    f"{b['bin_lower']:.1f} to {b['bin_upper']:.1f}",
                    _fmt(b["mean_predicted"]),
                    _fmt(b["observed_rate"]),
                    str(b["count"]),
                ]
                for b in m["calibration_table"]
            ],
        ),
        "",
        f"## Global feature importance ({m.get('importance_kind', '')}, share of total)",
        _rows(
            ["feature", "importance"],
            [[f"`{k}`", _fmt(v)] for k, v in list(importance.items())[:20]],
        ),
        "",
        "## Intended use",
        "Ranking this tenant's current customers by churn risk so the retention team can act "
        "early, with per-customer drivers (exact additive contributions to the model's log-odds). "
        "Probabilities are calibrated on this tenant's history and are meaningful only for "
        "customers like those it was trained on.",
        "",
        "## Caveats",
        "* Drivers are associations learned from history, not causes; acting on a driver does not "
        "guarantee retention.",
        "* Features recorded after the churn outcome (leakage) inflate these figures; only pass "
        "information known before the prediction date.",
        "* Performance drifts as customers, prices and products change: re-evaluate on a recent "
        "cutoff before promoting, and retrain periodically.",
        "* Do not use the score for decisions with legal or similarly significant effects on a "
        "person, or with protected attributes as features.",
        "",
    ]
    return "\n".join(parts)
