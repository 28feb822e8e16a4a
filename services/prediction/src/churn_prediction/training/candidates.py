"""The two model families compared by :func:`churn_prediction.training.procedure.train`.

Each fits on a canonical frame (see :class:`FeatureSchema`) and gives raw margins (log-odds) and
exact per-feature contributions: ``contributions.sum(axis=1) + bias == margin``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn_prediction.training.bgnbd import BGNBD
from churn_prediction.training.derived import DerivedFeatures
from churn_prediction.training.features import FeatureSchema

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ModelName = Literal["logistic_regression", "lightgbm"]

_MISSING_CATEGORY = "__missing__"
_TWO_THREADS_FROM_ROWS = 50_000


class Candidate(ABC):
    """One model family: fit on a canonical frame, give raw margins and contributions."""

    name: ModelName

    def __init__(self, schema: FeatureSchema, seed: int) -> None:
        self.schema = schema
        self.seed = seed

    @abstractmethod
    def fit(self, X: pd.DataFrame, y: IntArray) -> Candidate: ...

    @abstractmethod
    def margin(self, X: pd.DataFrame) -> FloatArray: ...

    @abstractmethod
    def contributions(self, X: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        """Per-feature contributions (n x p, schema order) and the bias (n,)."""
        ...

    @abstractmethod
    def importance(self) -> dict[str, float]: ...


class LogisticCandidate(Candidate):
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
                [
                    # A column missing on every row (no logins at all) stays, as zeros.
                    ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                    ("scale", StandardScaler()),
                ]
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
        # Newton-Cholesky: exact second-order steps suit a few dozen columns, and it does not
        # go through scipy's L-BFGS-B, which was most of this model's fitting time (measured).
        model = LogisticRegression(
            C=1.0, max_iter=5000, random_state=self.seed, solver="newton-cholesky"
        )
        return Pipeline([("prep", prep), ("model", model)])

    def fit(self, X: pd.DataFrame, y: IntArray) -> LogisticCandidate:
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


#: The hyperparameters :func:`~churn_prediction.training.procedure.train` may choose between for
#: LightGBM on time-ordered sets (nested inside the cross-validation): the defaults, and fewer,
#: shallower leaves with more rows per leaf, which held up better on later cutoffs of Online
#: Retail (behaviour drifts between cutoffs).
LIGHTGBM_GRID: tuple[dict[str, Any], ...] = (
    {},
    {
        "n_estimators": 150,
        "learning_rate": 0.04,
        "max_depth": 3,
        "num_leaves": 7,
        "min_child_samples": 100,
    },
)


class LightGBMCandidate(Candidate):
    name: ModelName = "lightgbm"

    def __init__(
        self, schema: FeatureSchema, seed: int, params: dict[str, Any] | None = None
    ) -> None:
        super().__init__(schema, seed)
        self.model: Any = None
        self.threads = 1
        self.params = dict(params or {})

    def _build(self) -> Any:
        from lightgbm import LGBMClassifier

        settings: dict[str, Any] = {
            # 100 shallow trees: as accurate as 200 deeper ones on Telco (CV), and TreeSHAP
            # explanations cost half as much.
            "n_estimators": 100,
            "learning_rate": 0.06,
            "max_depth": 4,
            "num_leaves": 15,
            "min_child_samples": 30,
            **self.params,
        }
        return LGBMClassifier(
            **settings,
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

    def fit(self, X: pd.DataFrame, y: IntArray) -> LightGBMCandidate:
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


class WithDerivedFeatures(Candidate):
    """A candidate that also reads the derived features (see
    :mod:`churn_prediction.training.derived`), fitted on the same rows; its input, margins and
    contributions are over the plain schema, as every other candidate's."""

    def __init__(
        self,
        schema: FeatureSchema,
        seed: int,
        inner: ModelName,
        horizon_days: float,
        params: dict[str, Any] | None = None,
        cache: dict[bytes, BGNBD] | None = None,
    ) -> None:
        super().__init__(schema, seed)
        self.name = inner
        self.derived = DerivedFeatures(schema, horizon_days)
        self._cache = cache  # only while fitting: not part of the stored model
        expanded = self.derived.expanded
        self.inner: Candidate = (
            LightGBMCandidate(expanded, seed, params)
            if inner == "lightgbm"
            else CANDIDATES[inner](expanded, seed)
        )

    def fit(self, X: pd.DataFrame, y: IntArray) -> WithDerivedFeatures:
        self.derived.fit(X, self._cache)
        self._cache = None
        self.inner.fit(self.derived.transform(X), y)
        return self

    def margin(self, X: pd.DataFrame) -> FloatArray:
        return self.inner.margin(self.derived.transform(X))

    def contributions(self, X: pd.DataFrame) -> tuple[FloatArray, FloatArray]:
        contrib, bias = self.inner.contributions(self.derived.transform(X))
        return self.derived.fold(contrib), bias

    def importance(self) -> dict[str, float]:
        """Over the inputs and the derived features, each by its own name."""
        return self.inner.importance()


CANDIDATES: dict[ModelName, type[Candidate]] = {
    "logistic_regression": LogisticCandidate,
    "lightgbm": LightGBMCandidate,
}


def _normalised(names: list[str], weights: FloatArray) -> dict[str, float]:
    total = float(weights.sum())
    scaled = weights / total if total > 0 else weights
    pairs = sorted(zip(names, scaled.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    return {name: round(float(w), 6) for name, w in pairs}
