"""The Markdown model card of a trained model."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from churn_prediction.training.model import TrainedModel


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


def _baselines(report: dict[str, Any] | None) -> list[str]:
    """The textbook baselines beside the model, with the lift and its bootstrap interval."""
    if not report:
        return []
    labels = {
        "recency": "days since last order (recency)",
        "bgnbd": "BG/NBD expected purchases",
        "pareto_nbd": "Pareto/NBD expected purchases",
    }
    # Reports stored before a baseline was added lack it.
    names = {key: label for key, label in labels.items() if key in report}
    boot = report["bootstrap"]
    lines = [
        "## Against the textbook baselines (same customers, out-of-fold"
        + (f", cutoff {report['cutoff']})" if report.get("cutoff") else ")"),
        _rows(
            ["score", "ROC-AUC", "PR-AUC", "Brier"],
            [
                [label, _fmt(s["roc_auc"]), _fmt(s["pr_auc"]), _fmt(s["brier"], 4)]
                for label, s in [("**this model**", report["model"])]
                + [(names[k], report[k]) for k in names]
            ],
        ),
        "",
    ]
    for key, label in names.items():
        lift = report["lift"][key]
        lines.append(
            f"* ROC-AUC lift over {label}: {_fmt(lift['roc_auc_diff'])} "
            f"(95 % interval {_fmt(lift['ci_low'])} to {_fmt(lift['ci_high'])})."
        )
    lines += [
        f"* Intervals: paired bootstrap over customers, {boot['replicates']} resamples, seed "
        f"{boot['seed']}. "
        + ("BG/NBD and Pareto/NBD are" if "pareto_nbd" in names else "BG/NBD is")
        + " fitted without labels on each cutoff's histories and scored as expected purchases "
        "in the next "
        f"{_fmt(report['horizon_days'], 0)} days; baseline "
        "Brier scores map each score to a probability by a cross-fitted logistic regression.",
        "",
    ]
    return lines


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
        *[
            f"* Tuning ({name}, nested in the time-ordered CV): setting "
            f"{t.get('chosen', '-')} of {len(t['grid'])} served; per fold "
            + ", ".join(str(c) for c in t["chosen_per_fold"])
            + " (0 = the defaults)."
            for name, t in m.get("tuning", {}).items()
        ],
        "",
        "## Data",
        f"* Rows: {m['n_rows']} (evaluated out-of-fold: {m['n_evaluated']}), "
        f"churn rate {_fmt(m['positive_rate'])}.",
        f"* Label: {m['label_source'] or 'not recorded'}.",
        f"* Features ({len(features)}): "
        + ", ".join(f"`{f.name}` ({f.kind})" for f in features)
        + ".",
    ]
    derived: list[str] = m.get("derived_features", [])
    if derived:
        parts.append(
            "* Derived from those at training and scoring time (BG/NBD fitted on the training "
            "rows; explanations credit each to the input it is built on): "
            + ", ".join(f"`{name}`" for name in derived)
            + "."
        )
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
        *_baselines(m.get("baselines")),
        f"## Calibration (out-of-fold, 10 bins; expected calibration error {_fmt(m.get('ece'))})",
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
