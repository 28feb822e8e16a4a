"""Evaluation: the metrics every report uses, a trained model on a held-out set, and the
baselines a model must beat (recency, BG/NBD and Pareto/NBD), with a paired bootstrap of the
difference.

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
from sklearn.model_selection import StratifiedKFold

from churn_prediction.training.bgnbd import BGNBD, RFM_FEATURES, fit_bgnbd, rfm_from_features
from churn_prediction.training.model import TrainedModel
from churn_prediction.training.pareto_nbd import ParetoNBD, fit_pareto_nbd
from churn_prediction.training.sets import map_label

__all__ = [
    "baseline_comparison",
    "bootstrap_auc",
    "calibration_table",
    "evaluate",
    "evaluate_probabilities",
    "expected_calibration_error",
    "ranking_scores",
    "recency_baseline_auc",
    "threshold_metrics",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_PARAMS = ("r", "alpha", "a", "b")
_PARETO_PARAMS = ("r", "alpha", "s", "beta")
#: Pareto/NBD is fitted on at most this many customers of each cutoff (a seeded sample): its
#: likelihood costs two hypergeometric functions per customer and its numerical gradient five
#: evaluations a step, and four parameters are estimated as well from a sample.
PARETO_FIT_ROWS = 1000


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


def expected_calibration_error(y: IntArray, p: FloatArray, bins: int = 10) -> float:
    """ECE: the row-weighted mean of ``|mean predicted - observed rate|`` over equal-width
    probability bins (the bins of :func:`calibration_table`)."""
    if len(y) == 0:
        return math.nan
    index = np.clip(np.digitize(p, np.linspace(0.0, 1.0, bins + 1)[1:-1]), 0, bins - 1)
    count = np.bincount(index, minlength=bins).astype(np.float64)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y.astype(np.float64), minlength=bins)
    return float(np.abs(predicted - observed).sum() / count.sum())


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
    single class), ``brier``, ``ece`` (see :func:`expected_calibration_error`), ``n``,
    ``positive_rate`` and a ``calibration_table``."""
    return {
        **ranking_scores(y, p),
        "ece": expected_calibration_error(y, p),
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


def bootstrap_auc(
    y: IntArray, scores: Sequence[FloatArray], *, replicates: int = 1000, seed: int = 0
) -> FloatArray:
    """ROC-AUC of each score on ``replicates`` paired bootstrap resamples of the rows
    (``replicates x len(scores)``): every score is ranked on the same resampled customers, so
    differences between columns are paired. Per resample and score, the drawn rows are counted
    per distinct score value and class (one ``bincount``), and the AUC is the Mann-Whitney
    statistic over those counts (ties count one half). A resample holding one class only
    gives NaN."""
    n = len(y)
    rng = np.random.default_rng(seed)
    out = np.empty((replicates, len(scores)), dtype=np.float64)
    labels = np.asarray(y, dtype=np.int64)
    ranks: list[tuple[IntArray, int]] = []
    for score in scores:
        values, dense = np.unique(np.asarray(score, dtype=np.float64), return_inverse=True)
        # Distinct value g of class c is cell 2 * g + c.
        ranks.append((2 * dense.astype(np.int64) + labels, 2 * len(values)))
    chunk = max(1, min(replicates, 1_000_000 // max(n, 1)))
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        draws = rng.integers(0, n, size=(b, n))
        for k, (cell, cells) in enumerate(ranks):
            flat = (np.arange(b)[:, None] * cells + cell[draws]).ravel()
            counts = np.bincount(flat, minlength=b * cells).reshape(b, cells // 2, 2)
            neg, pos = counts[:, :, 0].astype(np.float64), counts[:, :, 1].astype(np.float64)
            below = np.cumsum(neg, axis=1) - neg
            pairs = pos.sum(axis=1) * neg.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start : start + b, k] = (pos * (below + 0.5 * neg)).sum(axis=1) / pairs
    return out


def _cross_fitted_probability(score: FloatArray, y: IntArray, seed: int) -> FloatArray:
    """A ranking score as a probability: a one-feature logistic regression (Newton's method on
    the standardised score), cross-fitted over 5 stratified folds so no row is mapped with its
    own label (for a baseline's Brier score)."""
    out = np.full(len(y), float(y.mean()), dtype=np.float64)
    k = int(min(5, y.sum(), len(y) - y.sum()))
    if k < 2:
        return out
    spread = float(score.std()) or 1.0
    z = (score - float(score.mean())) / spread
    design = np.column_stack([np.ones(len(z)), z])
    splits = StratifiedKFold(k, shuffle=True, random_state=seed).split(design, y)
    for train_idx, test_idx in splits:
        A, t = design[train_idx], y[train_idx].astype(np.float64)
        beta = np.zeros(2)
        for _ in range(25):
            p = 1.0 / (1.0 + np.exp(-(A @ beta)))
            hessian = (A * (p * (1.0 - p))[:, None]).T @ A + 1e-9 * np.eye(2)
            step = np.linalg.solve(hessian, A.T @ (t - p))
            beta += step
            if float(np.abs(step).max()) < 1e-10:
                break
        out[test_idx] = 1.0 / (1.0 + np.exp(-(design[test_idx] @ beta)))
    return out


def _recency_score(days: FloatArray) -> FloatArray:
    finite = days[np.isfinite(days)]
    never = (float(finite.max()) if finite.size else 0.0) + 1.0
    return np.where(np.isnan(days), never, days)


def baseline_comparison(
    y: IntArray,
    p: FloatArray,
    features: pd.DataFrame,
    horizon_days: float,
    *,
    groups: npt.ArrayLike | None = None,
    replicates: int = 1000,
    seed: int = 0,
    with_pareto: bool = True,
) -> dict[str, Any] | None:
    """The model's probabilities ``p`` beside the textbook baselines on the same customers.

    * ``recency``: days since the last order (never ordered = riskiest).
    * ``bgnbd``: BG/NBD fitted (without labels) on these customers' histories as of their
      cutoff, separately per ``groups`` value (one cutoff each), scored as minus the expected
      purchases in the next ``horizon_days``.
    * ``pareto_nbd`` (when ``with_pareto``): Pareto/NBD, fitted the same way (on a seeded sample of
      at most :data:`PARETO_FIT_ROWS` customers per cutoff) and scored on every customer. Its
      fit costs more than the rest of the comparison together, so training leaves it out and
      ``POST /v1/models/{v}/evaluate`` computes it.

    Each baseline gets ROC-AUC, PR-AUC and a Brier score (its score mapped to a probability by a
    cross-fitted one-feature logistic regression); ``lift`` gives, per baseline, the model's
    ROC-AUC minus the baseline's with a 95 % percentile interval from a paired bootstrap over
    customers (``replicates``, fixed ``seed``). ``None`` when ``features`` lacks the behavioural
    columns (:data:`RFM_FEATURES`) or ``y`` holds one class.
    """
    if any(name not in features.columns for name in RFM_FEATURES):
        return None
    y = np.asarray(y, dtype=np.int64)
    if len(np.unique(y)) < 2:
        return None
    frame = features.reset_index(drop=True)
    x, t_x, T = rfm_from_features(frame)
    group_of = np.zeros(len(y)) if groups is None else np.asarray(groups)
    expected = np.zeros(len(y), dtype=np.float64)
    expected_pareto = np.zeros(len(y), dtype=np.float64)
    params: list[dict[str, float]] = []
    pareto_params: list[dict[str, float]] = []
    fitted: BGNBD | None = None
    pareto: ParetoNBD | None = None
    for group in np.unique(group_of).tolist():
        rows = group_of == group
        fitted = fit_bgnbd(x[rows], t_x[rows], T[rows], start=fitted)
        expected[rows] = fitted.expected_purchases(horizon_days, x[rows], t_x[rows], T[rows])
        params.append({k: round(v, 6) for k, v in zip(_PARAMS, fitted.params, strict=True)})
        if not with_pareto:
            continue
        # Both models share the purchase process: BG/NBD's (r, alpha) is a good start.
        start = pareto or ParetoNBD(fitted.r, fitted.alpha, 1.0, float(T[rows].mean()) or 1.0)
        sample = np.flatnonzero(rows)
        if len(sample) > PARETO_FIT_ROWS:
            sample = np.sort(np.random.default_rng(seed).choice(sample, PARETO_FIT_ROWS, False))
        pareto = fit_pareto_nbd(x[sample], t_x[sample], T[sample], start=start)
        expected_pareto[rows] = pareto.expected_purchases(horizon_days, x[rows], t_x[rows], T[rows])
        pareto_params.append(
            {k: round(v, 6) for k, v in zip(_PARETO_PARAMS, pareto.params, strict=True)}
        )
    days = frame["days_since_last_order"].to_numpy(dtype=np.float64)
    baselines = {"recency": _recency_score(days), "bgnbd": -expected}
    if with_pareto:
        baselines["pareto_nbd"] = -expected_pareto
    report: dict[str, Any] = {
        "model": ranking_scores(y, p),
        "horizon_days": horizon_days,
        "bootstrap": {"replicates": replicates, "seed": seed, "interval": 0.95},
    }
    transforms = {**baselines, "recency": np.log1p(np.maximum(baselines["recency"], 0.0))}
    for name, score in baselines.items():
        probability = _cross_fitted_probability(transforms[name], y, seed)
        report[name] = {
            "roc_auc": float(roc_auc_score(y, score)),
            "pr_auc": float(average_precision_score(y, score)),
            "brier": float(brier_score_loss(y, probability)),
        }
    report["bgnbd"]["params"] = params
    if with_pareto:
        report["pareto_nbd"]["params"] = pareto_params
    boot = bootstrap_auc(y, [p, *baselines.values()], replicates=replicates, seed=seed)
    lift: dict[str, dict[str, float | None]] = {}
    for k, name in enumerate(baselines, start=1):
        diff = boot[:, 0] - boot[:, k]
        diff = diff[np.isfinite(diff)]
        model_auc, base_auc = report["model"]["roc_auc"], report[name]["roc_auc"]
        lift[name] = {
            "roc_auc_diff": None if model_auc is None or base_auc is None else model_auc - base_auc,
            "ci_low": float(np.percentile(diff, 2.5)) if diff.size else None,
            "ci_high": float(np.percentile(diff, 97.5)) if diff.size else None,
        }
    report["lift"] = lift
    return report
