"""Derived features (pure): their definitions, and a model that reads them through the plain
behavioural schema (explanations, artifacts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn_prediction.training.candidates import WithDerivedFeatures
from churn_prediction.training.card import model_card
from churn_prediction.training.derived import (
    CREDIT,
    SUPERSEDED_BY,
    DerivedFeatures,
    derived_names,
)
from churn_prediction.training.features import FeatureSchema
from churn_prediction.training.model import TrainedModel
from churn_prediction.training.procedure import train
from churn_prediction.training.sets import TrainingSet
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES, HISTORY_FEATURE_NAMES, PROFILE_FEATURE_NAMES


def _frame() -> pd.DataFrame:
    rows = {name: [0.0, 0.0] for name in FEATURE_NAMES}
    rows.update(
        total_orders=[5.0, 1.0],
        days_since_last_order=[40.0, 10.0],
        account_age_days=[200.0, 10.0],
        orders_last_90d=[1.0, 1.0],
        spend_last_90d=[30.0, 12.0],
        avg_order_value=[20.0, 12.0],
    )
    return pd.DataFrame(rows)


def test_definitions_on_hand_computed_customers() -> None:
    frame = _frame()
    schema = FeatureSchema.infer(frame, list(FEATURE_NAMES), [])
    derived = DerivedFeatures(schema, 90.0).fit(pd.concat([frame] * 5, ignore_index=True))
    out = derived.transform(frame)
    assert list(out.columns) == list(FEATURE_NAMES) + list(CREDIT)
    # Customer 0: x = 4 repeat orders, last at t_x = 160 of T = 200 days.
    assert out.loc[0, "purchase_interval_days"] == pytest.approx(40.0)
    assert out.loc[0, "recency_ratio"] == pytest.approx(np.log(2.0))
    assert out.loc[0, "orders_per_30d"] == pytest.approx(0.75)
    assert out.loc[0, "order_rate_trend"] == pytest.approx(np.log1p((1 / 90) / (5 / 110)))
    assert out.loc[0, "spend_trend"] == pytest.approx(np.log(2.5))
    # Customer 1: one order, so no interval; BG/NBD calls a one-time buyer alive.
    assert np.isnan(out.loc[1, "purchase_interval_days"])
    assert np.isnan(out.loc[1, "recency_ratio"])
    assert out.loc[1, "bgnbd_p_alive"] == 1.0
    assert derived.bgnbd is not None
    assert out.loc[0, "bgnbd_expected_purchases"] == pytest.approx(
        derived.bgnbd.expected_purchases(90.0, [4.0], [160.0], [200.0])[0]
    )


def test_folding_credits_derived_contributions_to_their_inputs() -> None:
    schema = FeatureSchema.infer(_frame(), list(FEATURE_NAMES), [])
    derived = DerivedFeatures(schema, 90.0)
    wide = np.arange(2 * (len(FEATURE_NAMES) + len(CREDIT)), dtype=np.float64).reshape(2, -1)
    folded = derived.fold(wide)
    assert folded.shape == (2, len(FEATURE_NAMES))
    np.testing.assert_allclose(folded.sum(axis=1), wide.sum(axis=1))
    untouched = FEATURE_NAMES.index("email_open_rate")
    assert folded[0, untouched] == wide[0, untouched]


def _point_in_time_set() -> TrainingSet:
    parts = [simulate_customers(300, seed=s) for s in (21, 22, 23)]
    return TrainingSet(
        X=pd.DataFrame(np.vstack([p.features for p in parts]), columns=list(FEATURE_NAMES)),
        y=np.concatenate([p.labels for p in parts]).astype(np.int64),
        feature_names=list(FEATURE_NAMES),
        categorical=[],
        groups_time=np.repeat(np.array(["2024-01-01", "2024-04-01", "2024-07-01"]), 300),
        horizon_days=90,
    )


def test_a_model_with_derived_features_keeps_the_plain_schema() -> None:
    ts = _point_in_time_set()
    model = train(ts, seed=2)
    assert model.metrics["derived_features"] == list(CREDIT)
    assert model.feature_names == list(FEATURE_NAMES)
    assert set(CREDIT) & set(model.metrics["feature_importance"])
    rows = ts.X.head(50)
    contrib, bias = model.contributions(rows)
    assert contrib.shape == (50, len(FEATURE_NAMES))
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, model.raw_margin(rows), atol=1e-6)
    drivers = model.explain(rows, top_k=3)
    assert {d["feature"] for row in drivers for d in row} <= set(FEATURE_NAMES)
    loaded = TrainedModel.from_bytes(model.to_bytes())
    np.testing.assert_allclose(loaded.predict_proba(rows), model.predict_proba(rows))
    assert "`bgnbd_expected_purchases`" in model_card(model, "Shop")
    plain = train(ts, seed=2, derived_features=False)
    assert plain.metrics["derived_features"] == []
    assert not set(CREDIT) & set(plain.metrics["feature_importance"])


def test_history_features_of_the_profile_supersede_their_derived_approximations() -> None:
    frame = _frame()
    for name in HISTORY_FEATURE_NAMES:
        frame[name] = [1.0, np.nan]
    schema = FeatureSchema.infer(frame, list(PROFILE_FEATURE_NAMES), [])
    derived = DerivedFeatures(schema, 90.0).fit(pd.concat([frame] * 5, ignore_index=True))
    kept = [name for name in CREDIT if name not in SUPERSEDED_BY]
    assert derived.names == derived_names(schema) == kept
    assert list(derived.transform(frame).columns) == list(PROFILE_FEATURE_NAMES) + kept
    wide = np.ones((2, len(PROFILE_FEATURE_NAMES) + len(kept)))
    np.testing.assert_allclose(derived.fold(wide).sum(axis=1), wide.sum(axis=1))


def test_a_model_stored_before_derived_features_kept_their_names_still_scores() -> None:
    ts = _point_in_time_set()
    model = train(ts, seed=2, candidates=("lightgbm",), n_splits=2)
    candidate = model._candidate
    assert isinstance(candidate, WithDerivedFeatures)
    # As pickled before the instance kept its names: the class-level default (all of CREDIT).
    del candidate.derived.__dict__["credit"]
    loaded = TrainedModel.from_bytes(model.to_bytes())
    stored = loaded._candidate
    assert isinstance(stored, WithDerivedFeatures)
    assert "credit" not in stored.derived.__dict__
    assert stored.derived.names == list(CREDIT)
    rows = ts.X.head(20)
    np.testing.assert_allclose(loaded.predict_proba(rows), model.predict_proba(rows))
    contrib, bias = loaded.contributions(rows)
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, loaded.raw_margin(rows), atol=1e-6)
