"""The behavioural simulator of customer history."""

from __future__ import annotations

import numpy as np

from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES


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
