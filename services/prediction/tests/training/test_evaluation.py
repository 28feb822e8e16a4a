"""Held-out evaluation and the recency baseline (pure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_prediction.training.evaluation import evaluate, recency_baseline_auc
from churn_prediction.training.procedure import train_labelled


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = rng.exponential(60, size=n)
    orders = rng.poisson(4, size=n)
    logit = -1.5 + 0.03 * days - 0.2 * orders
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"days_since_last_order": days, "orders": orders, "churned": churned})


def test_evaluate_reports_held_out_figures() -> None:
    model = train_labelled(_frame(800, 0), "churned", seed=1)
    held_out = _frame(400, 1)
    report = evaluate(model, held_out.drop(columns="churned"), held_out["churned"])
    assert report["n"] == 400
    assert report["positive_rate"] == pytest.approx(held_out["churned"].mean())
    assert 0.7 < report["roc_auc"] <= 1.0
    assert 0 < report["pr_auc"] <= 1.0
    assert 0 < report["brier"] < 0.25
    assert sum(b["count"] for b in report["calibration_table"]) == 400
    baseline = recency_baseline_auc(held_out["days_since_last_order"], held_out["churned"])
    assert baseline is not None
    assert 0.6 < baseline <= 1.0


def test_evaluate_rejects_mismatched_lengths() -> None:
    model = train_labelled(_frame(300, 0), "churned", seed=1)
    held_out = _frame(10, 2)
    with pytest.raises(ValueError, match="rows"):
        evaluate(model, held_out, held_out["churned"].head(5))


def test_recency_baseline_ranks_longer_absence_as_riskier() -> None:
    assert recency_baseline_auc([1, 5, 200, 300], [0, 0, 1, 1]) == 1.0
    assert recency_baseline_auc([300, 200, 5, 1], [0, 0, 1, 1]) == 0.0


def test_recency_baseline_treats_never_ordered_as_riskiest() -> None:
    assert recency_baseline_auc([1.0, 5.0, None, float("nan")], [0, 0, 1, 1]) == 1.0


def test_recency_baseline_is_undefined_for_one_class() -> None:
    assert recency_baseline_auc([1, 2, 3], [0, 0, 0]) is None
