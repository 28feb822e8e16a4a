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


def test_expected_calibration_error_weighs_each_bins_gap_by_its_rows() -> None:
    from churn_prediction.training.evaluation import expected_calibration_error

    y = np.array([0, 0, 0, 1, 1, 1, 1, 0], dtype=np.int64)
    p = np.array([0.05, 0.05, 0.05, 0.05, 0.95, 0.95, 0.95, 0.95])
    # Bin 0: predicted 0.05, observed 0.25 (4 rows); bin 9: 0.95 vs 0.75 (4 rows).
    assert expected_calibration_error(y, p) == pytest.approx(0.2)
    assert expected_calibration_error(y, y.astype(np.float64)) == 0.0


def test_bootstrap_auc_is_paired_and_exact_on_each_resample() -> None:
    from sklearn.metrics import roc_auc_score

    from churn_prediction.training.evaluation import bootstrap_auc

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300).astype(np.int64)
    good = y + rng.normal(0, 0.8, 300)
    tied = np.round(good)  # many ties: they count one half
    boot = bootstrap_auc(y, [good, tied], replicates=50, seed=3)
    assert boot.shape == (50, 2)
    # Replay the same draws: each replicate equals sklearn's AUC on the resampled rows.
    draws = np.random.default_rng(3).integers(0, 300, size=(50, 300))
    for b in (0, 17, 49):
        idx = draws[b]
        assert boot[b, 0] == pytest.approx(roc_auc_score(y[idx], good[idx]))
        assert boot[b, 1] == pytest.approx(roc_auc_score(y[idx], tied[idx]))


def test_baseline_comparison_puts_recency_bgnbd_and_pareto_nbd_beside_the_model() -> None:
    from churn_prediction.training.evaluation import baseline_comparison
    from churn_prediction.training.simulation import simulate_customers
    from churn_shared.contracts import FEATURE_NAMES

    history = simulate_customers(1500, seed=5)
    frame = pd.DataFrame(history.features, columns=list(FEATURE_NAMES))
    y = history.labels.astype(np.int64)
    perfect = y.astype(np.float64)
    report = baseline_comparison(y, perfect, frame, 90.0, replicates=200, seed=0)
    assert report is not None
    assert report["model"]["roc_auc"] == 1.0
    days = frame["days_since_last_order"]
    assert report["recency"]["roc_auc"] == pytest.approx(recency_baseline_auc(days, y))
    assert 0.5 < report["bgnbd"]["roc_auc"] < 1.0
    assert 0.5 < report["pareto_nbd"]["roc_auc"] < 1.0
    assert report["pareto_nbd"]["params"][0]["s"] > 0
    for name in ("recency", "bgnbd", "pareto_nbd"):
        lift = report["lift"][name]
        assert lift["roc_auc_diff"] == pytest.approx(1.0 - report[name]["roc_auc"])
        assert 0 < lift["ci_low"] <= lift["roc_auc_diff"] <= lift["ci_high"]
    # Training leaves the costlier Pareto/NBD out; the rest of the comparison is the same.
    without = baseline_comparison(
        y, perfect, frame, 90.0, replicates=200, seed=0, with_pareto=False
    )
    assert without is not None
    assert "pareto_nbd" not in without
    assert set(without["lift"]) == {"recency", "bgnbd"}
    assert without["bgnbd"] == report["bgnbd"]
    assert without["recency"] == report["recency"]
    # A model no better than recency itself has an interval around zero.
    filled = days.fillna(days.max() + 1).to_numpy()
    same = baseline_comparison(y, filled / (filled.max() + 1), frame, 90.0, replicates=200)
    assert same is not None
    assert same["lift"]["recency"]["roc_auc_diff"] == pytest.approx(0.0)
    assert same["lift"]["recency"]["ci_low"] <= 0.0 <= same["lift"]["recency"]["ci_high"]
    # Without the behavioural columns there is nothing to compare with.
    assert baseline_comparison(y, perfect, frame.drop(columns="total_orders"), 90.0) is None
