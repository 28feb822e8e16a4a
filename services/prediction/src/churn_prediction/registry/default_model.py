"""The global default model ``default-1``: a LightGBM booster trained on simulated history, which
serves every tenant without a champion of its own."""

from __future__ import annotations

from typing import Any

from churn_prediction.config import Settings
from churn_prediction.scoring.scorer import BoosterScorer
from churn_prediction.training.booster import TrainingReport, train_booster_with_holdout
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES

DEFAULT_VERSION = "default-1"


def train_default_model(settings: Settings) -> tuple[BoosterScorer, TrainingReport]:
    """Train the global default on simulated history (blocking: call it in a thread)."""
    history = simulate_customers(settings.default_model_customers, seed=settings.default_model_seed)
    booster, report = train_booster_with_holdout(
        history.features,
        history.labels,
        seed=settings.default_model_seed,
        num_trees=settings.default_model_trees,
        num_threads=settings.model_num_threads,
    )
    return BoosterScorer(booster, num_threads=settings.model_num_threads), report


def default_model_card(metrics: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"# {DEFAULT_VERSION}: the global default churn model",
            "",
            "* Kind: LightGBM booster over the behavioural features "
            f"({', '.join(f'`{n}`' for n in FEATURE_NAMES)}).",
            f"* Trained on {metrics.get('n_train')} simulated customers (seed "
            f"{metrics.get('seed')}), ROC-AUC {metrics.get('roc_auc', float('nan')):.3f} on "
            f"{metrics.get('n_holdout')} held-out simulated customers.",
            "* Serves every tenant that has no champion of its own. Simulated behaviour is not "
            "your customers' behaviour: train a tenant model on your own history "
            "(`POST /v1/models/train`) and promote it once it beats this one.",
            "",
        ]
    )


def online_feature_schema() -> dict[str, Any]:
    """The feature schema of a model reading the online features (all numeric)."""
    return {"features": [{"name": n, "kind": "numeric", "dtype": "float64"} for n in FEATURE_NAMES]}
