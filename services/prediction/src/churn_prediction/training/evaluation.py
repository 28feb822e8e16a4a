"""Evaluation: the metrics every report uses, a trained model on a held-out set, and the recency
baseline a model must beat.

Plain synchronous functions with no I/O (run them off the event loop).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churn_prediction.training.model import TrainedModel
from churn_prediction.training.sets import map_label

__all__ = [
    "calibration_table",
    "evaluate",
    "evaluate_probabilities",
    "ranking_scores",
    "recency_baseline_auc",
    "threshold_metrics",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def ranking_scores(y: IntArray, p: FloatArray) -> dict[str, float | None]:
    """ROC-AUC and PR-AUC (``None`` when ``y`` has a single class) and the Brier score."""
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "pr_auc": float(average_precision_score(y, p)) if both else None,
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


def evaluate_probabilities(y: IntArray, p: FloatArray) -> dict[str, Any]:
    """Probabilities ``p`` against 0/1 labels ``y``: ``roc_auc``, ``pr_auc`` (``None`` for a
    single class), ``brier``, ``n``, ``positive_rate`` and a ``calibration_table``."""
    return {
        **ranking_scores(y, p),
        "n": len(y),
        "positive_rate": float(y.mean()),
        "calibration_table": calibration_table(y, p),
    }


def _labels(y: Sequence[Any] | npt.ArrayLike | pd.Series) -> IntArray:
    series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
    return map_label(series.reset_index(drop=True), "y")


def evaluate(
    trained: TrainedModel,
    X: pd.DataFrame,
    y: Sequence[Any] | npt.ArrayLike | pd.Series,
) -> dict[str, Any]:
    """Score ``X`` with the calibrated model and compare with the labels ``y``
    (see :func:`evaluate_probabilities`).

    Raises ``ValueError`` on a missing feature column, a length mismatch or labels that are not
    0/1-like.
    """
    labels = _labels(y)
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(labels)}")
    if len(labels) == 0:
        raise ValueError("nothing to evaluate: no rows")
    return evaluate_probabilities(labels, trained.predict_proba(X))


def recency_baseline_auc(
    days_since_last_order: Sequence[float | None] | npt.ArrayLike | pd.Series,
    y: Sequence[Any] | npt.ArrayLike | pd.Series,
) -> float | None:
    """ROC-AUC of ranking customers by days since their last order (longer = riskier).

    Customers who never ordered (missing value) rank as the riskiest. ``None`` when ``y`` holds
    a single class.
    """
    labels = _labels(y)
    days = pd.to_numeric(pd.Series(np.asarray(days_since_last_order, dtype=object)), "coerce")
    values = days.to_numpy(dtype=np.float64)
    if len(values) != len(labels):
        raise ValueError(f"{len(values)} recency values but {len(labels)} labels")
    if len(np.unique(labels)) < 2:
        return None
    finite = values[np.isfinite(values)]
    never = (float(finite.max()) if finite.size else 0.0) + 1.0
    values = np.where(np.isnan(values), never, values)
    auc = float(roc_auc_score(labels, values))
    return None if math.isnan(auc) else auc
