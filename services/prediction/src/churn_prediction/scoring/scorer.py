"""The churn model: a small LightGBM booster, its training, serving and explanations.

Served probabilities are exactly ``booster.predict(X)`` (the binary objective's sigmoid of the raw
score), and explanations are LightGBM's own SHAP values (``pred_contrib=True``): per row, the
feature contributions plus the bias add up to the raw log-odds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from churn_shared.contracts import FEATURE_NAMES, Driver

FloatArray = npt.NDArray[np.float64]

DEFAULT_SEED = 42
DEFAULT_NUM_TREES = 200


@dataclass(frozen=True, slots=True)
class TrainingReport:
    """How a freshly trained model did on the rows it did not see."""

    roc_auc: float
    n_rows: int
    n_train: int
    n_holdout: int
    positive_rate: float

    def as_metrics(self) -> dict[str, float | int]:
        return {
            "roc_auc": self.roc_auc,
            "n_rows": self.n_rows,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "positive_rate": self.positive_rate,
        }


def risk_level(probability: float, low_risk_below: float, high_risk_from: float) -> str:
    """``low`` < ``low_risk_below`` ≤ ``medium`` < ``high_risk_from`` ≤ ``high``."""
    if probability >= high_risk_from:
        return "high"
    if probability >= low_risk_below:
        return "medium"
    return "low"


class ChurnModel:
    """A LightGBM binary booster over a fixed, ordered list of features."""

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
        self._index = {name: i for i, name in enumerate(self.feature_names)}

    # -- training -------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        features: FloatArray,
        labels: npt.NDArray[Any],
        *,
        feature_names: Sequence[str] = FEATURE_NAMES,
        seed: int = DEFAULT_SEED,
        num_trees: int = DEFAULT_NUM_TREES,
        num_threads: int = 1,
        num_leaves: int = 8,
        max_depth: int = 3,
    ) -> ChurnModel:
        """Train a binary booster. Shallow trees by default: on the simulated history they are
        as accurate as deeper ones, and TreeSHAP explanations cost about O(trees * leaves *
        depth^2) per row, so depth 3 explains ~5x faster than unbounded 15-leaf trees."""
        params: dict[str, Any] = {
            "objective": "binary",
            "learning_rate": 0.05,
            "num_leaves": num_leaves,
            "max_depth": max_depth,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": num_threads,
            "verbose": -1,
        }
        dataset = lgb.Dataset(
            np.asarray(features, dtype=np.float64),
            label=np.asarray(labels, dtype=np.float64),
            feature_name=list(feature_names),
            free_raw_data=True,
        )
        booster = lgb.train(params, dataset, num_boost_round=num_trees)
        return cls(booster, feature_names, num_threads=num_threads)

    @classmethod
    def train_with_holdout(
        cls,
        features: FloatArray,
        labels: npt.NDArray[Any],
        *,
        holdout_fraction: float = 0.2,
        seed: int = DEFAULT_SEED,
        num_trees: int = DEFAULT_NUM_TREES,
        num_threads: int = 1,
    ) -> tuple[ChurnModel, TrainingReport]:
        """Train on a random (1 - ``holdout_fraction``) of the rows; report ROC-AUC on the rest."""
        from sklearn.metrics import roc_auc_score

        n = len(labels)
        order = np.random.default_rng(seed).permutation(n)
        n_holdout = max(1, int(n * holdout_fraction))
        holdout, train = order[:n_holdout], order[n_holdout:]
        model = cls.train(
            features[train], labels[train], seed=seed, num_trees=num_trees, num_threads=num_threads
        )
        held_labels = labels[holdout]
        auc = (
            float(roc_auc_score(held_labels, model.predict_proba(features[holdout])))
            if len(set(held_labels.tolist())) == 2
            else float("nan")
        )
        report = TrainingReport(
            roc_auc=auc,
            n_rows=n,
            n_train=len(train),
            n_holdout=n_holdout,
            positive_rate=float(np.mean(labels)) if n else 0.0,
        )
        return model, report

    # -- serving --------------------------------------------------------------------------

    def matrix_from_mappings(self, rows: Sequence[Mapping[str, float | None]]) -> FloatArray:
        """One row per mapping, columns in the model's feature order; missing → NaN."""
        columns = [[row.get(name) for row in rows] for name in self.feature_names]
        return self.matrix_from_columns(columns, len(rows))

    def matrix_from_columns(self, columns: Sequence[Sequence[Any] | None], n: int) -> FloatArray:
        """Columns (``None`` for a missing one) in the model's feature order → ``n x F`` float64."""
        matrix = np.full((n, len(self.feature_names)), np.nan, dtype=np.float64)
        for i, column in enumerate(columns):
            if column is not None:
                matrix[:, i] = np.asarray(column, dtype=np.float64)
        return matrix

    def predict_proba(self, matrix: FloatArray) -> FloatArray:
        """Churn probabilities, exactly ``booster.predict(matrix)``."""
        result: FloatArray = np.asarray(
            self.booster.predict(matrix, num_threads=self.num_threads), dtype=np.float64
        )
        return result

    def predict_raw(self, matrix: FloatArray) -> FloatArray:
        """Raw scores (log-odds)."""
        result: FloatArray = np.asarray(
            self.booster.predict(matrix, raw_score=True, num_threads=self.num_threads),
            dtype=np.float64,
        )
        return result

    def contributions(self, matrix: FloatArray) -> FloatArray:
        """SHAP contributions per feature, with the bias as the last column (log-odds)."""
        result: FloatArray = np.asarray(
            self.booster.predict(matrix, pred_contrib=True, num_threads=self.num_threads),
            dtype=np.float64,
        )
        return result

    def explain(self, matrix: FloatArray, top_k: int = 3) -> list[list[Driver]]:
        """The ``top_k`` features that moved each row's score the most, largest first."""
        contrib = self.contributions(matrix)
        return [self._drivers(matrix[r], contrib[r], top_k) for r in range(matrix.shape[0])]

    def predict_with_drivers(
        self, matrix: FloatArray, top_k: int = 3
    ) -> tuple[FloatArray, list[list[Driver]]]:
        return self.predict_proba(matrix), self.explain(matrix, top_k)

    def _drivers(self, values: FloatArray, contrib: FloatArray, top_k: int) -> list[Driver]:
        features = contrib[: len(self.feature_names)]
        order = np.argsort(-np.abs(features), kind="stable")[:top_k]
        drivers: list[Driver] = []
        for i in order:
            value = float(values[i])
            contribution = float(features[i])
            drivers.append(
                Driver(
                    feature=self.feature_names[i],
                    value=None if math.isnan(value) else value,
                    contribution=contribution,
                    direction="increases_risk" if contribution > 0 else "decreases_risk",
                )
            )
        return drivers

    # -- persistence ----------------------------------------------------------------------

    def to_string(self) -> str:
        text: str = self.booster.model_to_string()
        return text

    @classmethod
    def from_string(
        cls, text: str, feature_names: Sequence[str] | None = None, *, num_threads: int = 1
    ) -> ChurnModel:
        booster = lgb.Booster(model_str=text)
        names = list(feature_names) if feature_names else list(booster.feature_name())
        return cls(booster, names, num_threads=num_threads)
