"""Evaluate a trained model on a held-out set, and the recency baseline it must beat.

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

from churn_prediction.training.procedure import TrainedModel, calibration_table, map_label

__all__ = ["evaluate", "recency_baseline_auc"]


def _labels(y: Sequence[Any] | npt.ArrayLike | pd.Series) -> npt.NDArray[np.int64]:
    series = y if isinstance(y, pd.Series) else pd.Series(np.asarray(y))
    return map_label(series.reset_index(drop=True), "y")


def evaluate(
    trained: TrainedModel,
    X: pd.DataFrame,
    y: Sequence[Any] | npt.ArrayLike | pd.Series,
) -> dict[str, Any]:
    """Score ``X`` with the calibrated model and compare with the labels ``y``.

    Returns ``roc_auc``, ``pr_auc`` (``None`` when ``y`` has a single class), ``brier``, ``n``,
    ``positive_rate`` and a ``calibration_table``. Raises ``ValueError`` on a missing feature
    column, a length mismatch or labels that are not 0/1-like.
    """
    labels = _labels(y)
    if len(labels) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(labels)}")
    if len(labels) == 0:
        raise ValueError("nothing to evaluate: no rows")
    p = trained.predict_proba(X)
    both = len(np.unique(labels)) == 2
    return {
        "roc_auc": float(roc_auc_score(labels, p)) if both else None,
        "pr_auc": float(average_precision_score(labels, p)) if both else None,
        "brier": float(brier_score_loss(labels, p)),
        "n": len(labels),
        "positive_rate": float(labels.mean()),
        "calibration_table": calibration_table(labels, p),
    }


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
