"""The simulator and the LightGBM model wrapper, in-process."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churn_prediction.scoring.scorer import ChurnModel, risk_level
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES


@pytest.fixture(scope="module")
def trained() -> ChurnModel:
    history = simulate_customers(4000, seed=1)
    return ChurnModel.train(history.features, history.labels, seed=7)


def test_simulator_is_reproducible_and_shaped_like_the_contract() -> None:
    a = simulate_customers(500, seed=3)
    b = simulate_customers(500, seed=3)
    assert a.features.shape == (500, len(FEATURE_NAMES))
    np.testing.assert_array_equal(a.features, b.features)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, simulate_customers(500, seed=4).labels)
    assert set(np.unique(a.labels).tolist()) == {0, 1}


def test_simulated_features_stay_in_their_behavioural_ranges() -> None:
    history = simulate_customers(3000, seed=5)
    col = {name: history.features[:, i] for i, name in enumerate(FEATURE_NAMES)}
    assert col["account_age_days"].min() >= 30
    assert col["account_age_days"].max() <= 1000
    assert np.nanmax(col["days_since_last_order"]) <= 250
    assert col["email_open_rate"].min() >= 0
    assert col["email_open_rate"].max() <= 0.7
    assert col["logins_last_30d"].max() <= 20
    assert (col["orders_last_90d"] <= col["total_orders"]).all()
    assert (col["spend_last_90d"] <= col["total_spent"] + 1e-9).all()
    with_orders = col["total_orders"] > 0
    aov = col["avg_order_value"][with_orders]
    assert aov.min() >= 27
    assert aov.max() <= 165
    assert np.isnan(col["avg_order_value"][~with_orders]).all()
    assert 0.1 < history.positive_rate < 0.45


def test_simulated_churners_are_less_engaged_than_stayers() -> None:
    history = simulate_customers(4000, seed=6)
    recency = history.features[:, FEATURE_NAMES.index("days_since_last_order")]
    opens = history.features[:, FEATURE_NAMES.index("email_open_rate")]
    churned = history.labels == 1
    assert np.nanmean(recency[churned]) > np.nanmean(recency[~churned]) + 40
    assert opens[churned].mean() < opens[~churned].mean() - 0.15


def test_model_learns_churn_on_held_out_customers(trained: ChurnModel) -> None:
    held_out = simulate_customers(2000, seed=2)
    auc = roc_auc_score(held_out.labels, trained.predict_proba(held_out.features))
    assert auc >= 0.8


def test_train_with_holdout_reports_metrics() -> None:
    history = simulate_customers(2000, seed=8)
    model, report = ChurnModel.train_with_holdout(history.features, history.labels, num_trees=50)
    assert report.n_rows == 2000
    assert report.n_holdout == 400
    assert report.roc_auc >= 0.8
    assert report.positive_rate == pytest.approx(history.positive_rate)
    assert model.booster.num_trees() == 50


def test_predict_proba_is_booster_predict_and_handles_missing_values(trained: ChurnModel) -> None:
    rows = simulate_customers(50, seed=9).features
    rows[::3, 3] = np.nan
    probabilities = trained.predict_proba(rows)
    np.testing.assert_array_equal(probabilities, trained.booster.predict(rows))
    assert ((probabilities > 0) & (probabilities < 1)).all()
    empty = trained.matrix_from_mappings([{}])
    assert np.isnan(empty).all()
    assert 0 < trained.predict_proba(empty)[0] < 1


def test_drivers_and_bias_sum_to_the_raw_log_odds(trained: ChurnModel) -> None:
    rows = simulate_customers(20, seed=10).features
    contributions = trained.contributions(rows)
    np.testing.assert_allclose(contributions.sum(axis=1), trained.predict_raw(rows), atol=1e-9)
    probabilities = trained.predict_proba(rows)
    np.testing.assert_allclose(
        1 / (1 + np.exp(-contributions.sum(axis=1))), probabilities, atol=1e-12
    )
    explained = trained.explain(rows, top_k=3)
    for r, drivers in enumerate(explained):
        assert len(drivers) == 3
        sizes = [abs(d.contribution) for d in drivers]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(contributions[r, :-1]).max())
        for d in drivers:
            i = FEATURE_NAMES.index(d.feature)
            assert d.contribution == contributions[r, i]
            assert d.value == rows[r, i]
            expected = "increases_risk" if d.contribution > 0 else "decreases_risk"
            assert d.direction == expected
    full = trained.explain(rows[:1], top_k=len(FEATURE_NAMES))[0]
    total = sum(d.contribution for d in full) + contributions[0, -1]
    assert total == pytest.approx(trained.predict_raw(rows[:1])[0], abs=1e-9)


def test_missing_values_become_null_driver_values(trained: ChurnModel) -> None:
    matrix = trained.matrix_from_mappings([{"days_since_last_order": None}])
    drivers = trained.explain(matrix, top_k=len(FEATURE_NAMES))[0]
    assert all(d.value is None for d in drivers)
    assert not any(math.isnan(d.contribution) for d in drivers)


def test_model_string_round_trip_predicts_identically(trained: ChurnModel) -> None:
    rows = simulate_customers(100, seed=11).features
    restored = ChurnModel.from_string(trained.to_string())
    assert restored.feature_names == FEATURE_NAMES
    np.testing.assert_array_equal(restored.predict_proba(rows), trained.predict_proba(rows))


def test_training_is_deterministic_for_a_seed() -> None:
    history = simulate_customers(1000, seed=12)
    a = ChurnModel.train(history.features, history.labels, seed=3, num_trees=30)
    b = ChurnModel.train(history.features, history.labels, seed=3, num_trees=30)
    np.testing.assert_array_equal(
        a.predict_proba(history.features), b.predict_proba(history.features)
    )


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
