"""The training procedure: compare candidates by cross-validation, calibrate, refit.

Everything in :mod:`churn_prediction.training` is plain, CPU-bound, synchronous code with no I/O:
the service runs it in a thread, the CLI calls it directly.

Procedure (:func:`train`):

1. Two candidates are compared by cross-validation on the same folds: a regularised logistic
   regression (median imputation + scaling for numbers, one-hot for categories) and LightGBM
   (native categorical splits, fixed seed, deterministic, 2 threads). Folds are stratified
   5-fold (shuffled, seeded), or time-ordered (train on earlier cutoffs, test on a later one)
   when the training set carries ``groups_time`` with at least two distinct cutoffs.
   On time-ordered sets LightGBM's setting is tuned over a small grid
   (:data:`~churn_prediction.training.candidates.LIGHTGBM_GRID`), nested: each fold's setting
   is the best on the earlier folds, which are time-ordered folds within its own training
   rows, so the out-of-fold figures never rate the tuned choice; the served model's setting is
   the best on all folds.
2. The winner is the candidate with the higher out-of-fold PR-AUC (average precision).
3. The winner is calibrated on its out-of-fold raw scores (the same scheme as scikit-learn's
   ``CalibratedClassifierCV(ensemble=False)``): sigmoid (Platt) and isotonic are both estimated by
   cross-validation over the out-of-fold scores, and the one with the lower Brier score is kept.
   Should neither beat the uncalibrated scores, the identity (``"none"``) is kept, so the reported
   calibrated Brier score is never worse than the uncalibrated one.
4. The out-of-fold probabilities are compared with the textbook baselines on the same rows
   (recency, BG/NBD; see :func:`~churn_prediction.training.evaluation.baseline_comparison`)
   and their expected calibration error is recorded.
5. The served model is the winner refitted on all rows plus that calibrator. All reported figures
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

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import StratifiedKFold

from churn_prediction.training.bgnbd import BGNBD
from churn_prediction.training.calibration import (
    CalibrationMethod,
    Calibrator,
    oof_calibrated,
    sigmoid,
)
from churn_prediction.training.candidates import (
    CANDIDATES,
    LIGHTGBM_GRID,
    Candidate,
    LightGBMCandidate,
    ModelName,
    WithDerivedFeatures,
)
from churn_prediction.training.derived import DerivedFeatures, derived_names
from churn_prediction.training.evaluation import (
    baseline_comparison,
    calibration_table,
    expected_calibration_error,
    ranking_scores,
    threshold_metrics,
)
from churn_prediction.training.features import FeatureSchema
from churn_prediction.training.model import TrainedModel
from churn_prediction.training.sets import TrainingSet, labelled_training_set

__all__ = ["ProgressCallback", "train", "train_labelled"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ProgressCallback = Callable[[float, str], None]
#: The horizon assumed for the BG/NBD baseline when a training set does not record its own.
DEFAULT_HORIZON_DAYS = 90
#: Paired bootstrap resamples for the interval of the lift over the baselines.
BOOTSTRAP_REPLICATES = 1000


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


def _tuning_times(ts: TrainingSet, cv_description: str) -> npt.NDArray[Any] | None:
    """The cutoff of every row when the set is time-ordered (tuning needs earlier cutoffs)."""
    if ts.groups_time is None or not cv_description.startswith("time-ordered"):
        return None
    return np.asarray(ts.groups_time)


def _candidate(
    name: ModelName,
    schema: FeatureSchema,
    seed: int,
    params: dict[str, Any],
    horizon: float | None,
    cache: dict[bytes, BGNBD] | None = None,
) -> Candidate:
    """One candidate; with ``horizon`` set it also reads the derived features (their BG/NBD
    fits shared through ``cache`` within one training run)."""
    if horizon is not None:
        return WithDerivedFeatures(schema, seed, name, horizon, params, cache)
    if name == "lightgbm":
        return LightGBMCandidate(schema, seed, params)
    return CANDIDATES[name](schema, seed)


def _settings(name: ModelName, times: npt.NDArray[Any] | None) -> list[dict[str, Any]]:
    """The settings cross-validated for ``name``: LightGBM's grid on time-ordered sets."""
    return list(LIGHTGBM_GRID) if name == "lightgbm" and times is not None else [{}]


def _nested_choice(
    y: IntArray,
    folds: list[tuple[IntArray, IntArray]],
    per_setting: list[FloatArray],
    upto: int,
) -> int:
    """The setting with the best pooled PR-AUC over the folds before ``upto`` (0, the
    defaults, when there are none or a tie). With time-ordered folds (train on every earlier
    cutoff, test at one) the folds before fold ``k`` are exactly time-ordered folds *within*
    fold ``k``'s training rows, so choosing on them is nested: fold ``k``'s test rows never
    influence their own setting."""
    if upto == 0 or len(per_setting) == 1:
        return 0
    tested = np.concatenate([folds[f][1] for f in range(upto)])
    if len(np.unique(y[tested])) < 2:
        return 0
    scores = [_scores(y[tested], sigmoid(m[tested]))["pr_auc"] for m in per_setting]
    return max(range(len(scores)), key=lambda k: (scores[k], -k))


def _scores(y: IntArray, p: FloatArray) -> dict[str, float]:
    """ROC-AUC, PR-AUC and Brier, NaN where undefined (one class), for comparing candidates."""
    return {k: math.nan if v is None else v for k, v in ranking_scores(y, p).items()}


def train(
    ts: TrainingSet,
    *,
    seed: int = 42,
    threshold: float = 0.7,
    n_splits: int = 5,
    candidates: Sequence[ModelName] = ("logistic_regression", "lightgbm"),
    progress: ProgressCallback | None = None,
    derived_features: bool = True,
) -> TrainedModel:
    """Compare candidates by cross-validation, pick by PR-AUC, calibrate, refit on all rows.

    ``progress(percent, stage)`` is called with percent in 0..100 at each stage.
    ``metrics`` of the result (all out-of-fold): ``roc_auc``, ``pr_auc``, ``brier``
    (calibrated), ``brier_uncalibrated``, ``calibration`` (method and parameters),
    ``calibration_table``, ``at_threshold`` (precision/recall), ``n_rows``, ``positive_rate``,
    ``candidates`` (per-candidate scores), ``model``, ``feature_importance``, ``seed``,
    ``cv``, ``label_source``, ``excluded_columns``, ``n_features``, ``duration_seconds``,
    ``ece`` (expected calibration error) and ``baselines`` (recency and BG/NBD on the same
    out-of-fold rows, the latest cutoff's when time-ordered, with the lift and its bootstrap
    interval, see
    :func:`~churn_prediction.training.evaluation.baseline_comparison`; ``None`` without the
    behavioural features).
    """
    started = time.perf_counter()
    report = progress or (lambda _pct, _stage: None)
    if not candidates:
        raise ValueError("no candidate models")
    report(0.0, "preparing")
    schema = FeatureSchema.infer(ts.X, ts.feature_names, ts.categorical)
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
    times = _tuning_times(ts, cv_description)
    # Derived features (BG/NBD's expectation, recency relative to the customer's own rhythm,
    # trends) whenever the set carries the behavioural features they are computed from.
    horizon = (
        float(ts.horizon_days or DEFAULT_HORIZON_DAYS)
        if derived_features and DerivedFeatures.applicable(schema)
        else None
    )
    cache: dict[bytes, BGNBD] = {}
    tuned: dict[str, Any] = {}
    for name in candidates:
        settings = _settings(name, times)
        per_setting = [np.full(len(y), math.nan, dtype=np.float64) for _ in settings]
        for train_idx, test_idx in folds:
            report(5.0 + 75.0 * done / steps, f"cross-validating {name}")
            for k, params in enumerate(settings):
                model = _candidate(name, schema, seed, params, horizon, cache)
                model.fit(X.iloc[train_idx], y[train_idx])
                per_setting[k][test_idx] = model.margin(X.iloc[test_idx])
            done += 1
        # Nested tuning: each fold's setting is chosen on the earlier folds only.
        chosen_per_fold = [_nested_choice(y, folds, per_setting, f) for f in range(len(folds))]
        margin = np.full(len(y), math.nan, dtype=np.float64)
        for (_, test_idx), k in zip(folds, chosen_per_fold, strict=True):
            margin[test_idx] = per_setting[k][test_idx]
        margins[name] = margin
        per_candidate[name] = _scores(y_eval, sigmoid(margin[evaluated]))
        if len(settings) > 1:
            tuned[name] = {
                "grid": settings,
                "chosen_per_fold": chosen_per_fold,
                # The served model's setting: chosen on every fold.
                "chosen": _nested_choice(y, folds, per_setting, len(folds)),
            }

    chosen: ModelName = max(
        candidates, key=lambda n: (per_candidate[n]["pr_auc"], -candidates.index(n))
    )
    report(80.0, "calibrating")
    oof_margin = margins[chosen][evaluated]
    eval_folds = fold_of[evaluated]
    uncalibrated = sigmoid(oof_margin)
    brier_uncalibrated = float(brier_score_loss(y_eval, uncalibrated))
    options: dict[CalibrationMethod, FloatArray] = {"none": uncalibrated}
    methods: tuple[CalibrationMethod, ...] = ("sigmoid", "isotonic", "none")
    for option in methods[:2]:
        options[option] = oof_calibrated(oof_margin, y_eval, eval_folds, option)
    briers = {m: float(brier_score_loss(y_eval, p)) for m, p in options.items()}
    # Ties go to the earlier option: calibration is kept unless it makes the Brier score worse.
    method = min(methods, key=lambda m: briers[m])
    p_cal = options[method]

    report(85.0, f"fitting {chosen} on all rows")
    final_params = _settings(chosen, times)[tuned[chosen]["chosen"] if chosen in tuned else 0]
    final = _candidate(chosen, schema, seed, final_params, horizon, cache).fit(X, y)
    calibrator = Calibrator(method).fit(oof_margin, y_eval)
    report(95.0, "reporting")

    scores = _scores(y_eval, p_cal)
    metrics: dict[str, Any] = {
        "model": chosen,
        "roc_auc": scores["roc_auc"],
        "pr_auc": scores["pr_auc"],
        "brier": scores["brier"],
        "brier_uncalibrated": brier_uncalibrated,
        "ece": expected_calibration_error(y_eval, p_cal),
        "calibration": {**calibrator.describe(), "cv_brier": briers},
        "calibration_table": calibration_table(y_eval, p_cal),
        "at_threshold": threshold_metrics(y_eval, p_cal, threshold),
        "n_rows": len(y),
        "n_evaluated": int(evaluated.sum()),
        "positive_rate": float(y.mean()),
        "n_features": len(schema.features),
        "candidates": per_candidate,
        "tuning": tuned,
        "derived_features": derived_names(schema) if horizon is not None else [],
        "feature_importance": final.importance(),
        "importance_kind": "gain" if chosen == "lightgbm" else "mean |linear contribution|",
        "seed": seed,
        "cv": cv_description,
        "label_source": ts.label_source,
        "excluded_columns": dict(ts.excluded_columns),
    }
    # The textbook baselines on the same out-of-fold customers (point-in-time sets only): those
    # of the latest held-out cutoff when time-ordered (the window closest to serving), else all.
    latest = eval_folds == eval_folds.max() if times is not None else np.ones_like(y_eval, bool)
    metrics["baselines"] = baseline_comparison(
        y_eval[latest],
        p_cal[latest],
        X.loc[evaluated].loc[latest],
        float(ts.horizon_days or DEFAULT_HORIZON_DAYS),
        replicates=BOOTSTRAP_REPLICATES,
        seed=seed,
        # BG/NBD is the textbook baseline the card must show; Pareto/NBD, its costlier sibling,
        # is left to `evaluate`, which keeps training within twice its old cost.
        with_pareto=False,
    )
    if metrics["baselines"] is not None and times is not None:
        metrics["baselines"]["cutoff"] = str(times[folds[-1][1][0]])
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
