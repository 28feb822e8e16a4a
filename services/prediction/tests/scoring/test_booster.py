"""The LightGBM booster: training (with a holdout report) and serving through its scorer."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churn_prediction.scoring.scorer import BoosterScorer, FeatureColumns, risk_level
from churn_prediction.training.booster import train_booster, train_booster_with_holdout
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES


@pytest.fixture(scope="module")
def trained() -> BoosterScorer:
    history = simulate_customers(4000, seed=1)
    return BoosterScorer(train_booster(history.features, history.labels, seed=7))


def test_model_learns_churn_on_held_out_customers(trained: BoosterScorer) -> None:
    held_out = simulate_customers(2000, seed=2)
    auc = roc_auc_score(held_out.labels, trained.predict(held_out.features))
    assert auc >= 0.8


def test_train_with_holdout_reports_metrics() -> None:
    history = simulate_customers(2000, seed=8)
    booster, report = train_booster_with_holdout(history.features, history.labels, num_trees=50)
    assert report.n_rows == 2000
    assert report.n_holdout == 400
    assert report.roc_auc >= 0.8
    assert report.positive_rate == pytest.approx(history.positive_rate)
    assert booster.num_trees() == 50


def test_predict_proba_is_booster_predict_and_handles_missing_values(
    trained: BoosterScorer,
) -> None:
    rows = simulate_customers(50, seed=9).features
    rows[::3, 3] = np.nan
    probabilities = trained.predict(rows)
    np.testing.assert_array_equal(probabilities, trained.booster.predict(rows))
    assert ((probabilities > 0) & (probabilities < 1)).all()
    empty = trained.parse(FeatureColumns.from_mappings([{}], trained.feature_names))
    assert np.isnan(empty).all()
    assert 0 < trained.predict(empty)[0] < 1


def test_drivers_and_bias_sum_to_the_raw_log_odds(trained: BoosterScorer) -> None:
    rows = simulate_customers(20, seed=10).features
    contributions = trained.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), trained.predict_raw(rows), atol=1e-9)
    probabilities = trained.predict(rows)
    np.testing.assert_allclose(
        1 / (1 + np.exp(-contributions.sum(axis=1))), probabilities, atol=1e-12
    )
    explained = trained.explain(rows, top_k=3)
    np.testing.assert_array_equal(explained.probabilities, probabilities)
    for r, drivers in enumerate(explained.drivers):
        assert len(drivers) == 3
        sizes = [abs(d["contribution"]) for d in drivers]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(contributions[r, :-1]).max())
        for d in drivers:
            i = FEATURE_NAMES.index(d["feature"])
            assert d["contribution"] == contributions[r, i]
            assert d["value"] == rows[r, i]
            expected = "increases_risk" if d["contribution"] > 0 else "decreases_risk"
            assert d["direction"] == expected
    full = trained.explain(rows[:1], top_k=len(FEATURE_NAMES)).drivers[0]
    total = sum(d["contribution"] for d in full) + contributions[0, -1]
    assert total == pytest.approx(trained.predict_raw(rows[:1])[0], abs=1e-9)


def test_missing_values_become_null_driver_values(trained: BoosterScorer) -> None:
    columns = FeatureColumns.from_mappings([{"days_since_last_order": None}], FEATURE_NAMES)
    drivers = trained.explain(trained.parse(columns), top_k=len(FEATURE_NAMES)).drivers[0]
    assert all(d["value"] is None for d in drivers)
    assert not any(math.isnan(d["contribution"]) for d in drivers)


def test_model_string_round_trip_predicts_identically(trained: BoosterScorer) -> None:
    rows = simulate_customers(100, seed=11).features
    restored = BoosterScorer.from_string(trained.to_string())
    assert restored.feature_names == FEATURE_NAMES
    np.testing.assert_array_equal(restored.predict(rows), trained.predict(rows))


def test_training_is_deterministic_for_a_seed() -> None:
    history = simulate_customers(1000, seed=12)
    a = train_booster(history.features, history.labels, seed=3, num_trees=30)
    b = train_booster(history.features, history.labels, seed=3, num_trees=30)
    np.testing.assert_array_equal(a.predict(history.features), b.predict(history.features))


@pytest.mark.parametrize(
    ("probability", "level"),
    [
        (0.0, "low"),
        (0.399, "low"),
        (0.4, "medium"),
        (0.699, "medium"),
        (0.7, "high"),
        (1.0, "high"),
    ],
)
def test_risk_levels_follow_the_bands(probability: float, level: str) -> None:
    assert risk_level(probability, 0.4, 0.7) == level
