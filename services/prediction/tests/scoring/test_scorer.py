"""The Scorer protocol, in-process: both implementations parse, predict and explain the same way
(tiny in-memory models; no database, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn_prediction.scoring.scorer import (
    BoosterScorer,
    FeatureColumns,
    InvalidFeatureValueError,
    PipelineScorer,
    Scorer,
    risk_levels,
)
from churn_prediction.scoring.serving import ServingModel
from churn_prediction.training.booster import train_booster
from churn_prediction.training.model import TrainedModel
from churn_prediction.training.procedure import train
from churn_prediction.training.sets import TrainingSet, labelled_training_set
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES


def events_model() -> TrainedModel:
    history = simulate_customers(400, seed=1)
    ts = TrainingSet(
        X=pd.DataFrame(history.features, columns=list(FEATURE_NAMES)),
        y=history.labels.astype(np.int64),
        feature_names=list(FEATURE_NAMES),
        categorical=[],
    )
    return train(ts, candidates=("logistic_regression",), n_splits=3)


def attributes_model() -> TrainedModel:
    rng = np.random.default_rng(3)
    n = 300
    plan = rng.choice(["monthly", "yearly", "lifetime"], n)
    tenure = rng.integers(0, 60, n).astype(float)
    churned = rng.random(n) < np.where(plan == "monthly", 0.5, 0.1) + 0.002 * (60 - tenure)
    frame = pd.DataFrame({"plan": plan, "tenure": tenure, "churned": churned.astype(int)})
    ts = labelled_training_set(frame, "churned")
    return train(ts, candidates=("logistic_regression",), n_splits=3)


@pytest.fixture(scope="module")
def scorers() -> dict[str, Scorer[Any]]:
    history = simulate_customers(400, seed=2)
    return {
        "booster": BoosterScorer(train_booster(history.features, history.labels, num_trees=10)),
        "events pipeline": PipelineScorer(events_model()),
        "attributes pipeline": PipelineScorer(attributes_model()),
    }


def rows_for(name: str) -> list[dict[str, Any]]:
    if name == "attributes pipeline":
        return [{"plan": "monthly", "tenure": 2}, {"plan": "yearly"}, {"tenure": None}]
    return [
        {"days_since_last_order": 200, "email_open_rate": 0.01},
        {"total_orders": 12, "logins_last_30d": 9.0},
        {},
    ]


@pytest.mark.parametrize("name", ["booster", "events pipeline", "attributes pipeline"])
def test_parse_predict_explain_agree_for_every_scorer(
    scorers: dict[str, Scorer[Any]], name: str
) -> None:
    scorer = scorers[name]
    batch = scorer.parse(FeatureColumns.from_mappings(rows_for(name), scorer.feature_names))
    probabilities = scorer.predict(batch)
    assert probabilities.shape == (3,)
    assert ((probabilities > 0) & (probabilities < 1)).all()
    explained = scorer.explain(batch, 2)
    np.testing.assert_allclose(explained.probabilities, probabilities, rtol=0, atol=1e-12)
    assert [len(drivers) for drivers in explained.drivers] == [2, 2, 2]
    for drivers in explained.drivers:
        sizes = [abs(d["contribution"]) for d in drivers]
        assert sizes == sorted(sizes, reverse=True)
        assert {d["feature"] for d in drivers} <= set(scorer.feature_names)
        for d in drivers:
            expected = "increases_risk" if d["contribution"] > 0 else "decreases_risk"
            assert d["direction"] == expected or d["contribution"] == 0


@pytest.mark.parametrize("name", ["booster", "events pipeline", "attributes pipeline"])
def test_a_feature_not_given_is_unknown_for_every_row(
    scorers: dict[str, Scorer[Any]], name: str
) -> None:
    scorer = scorers[name]
    nothing = FeatureColumns(2, [None] * len(scorer.feature_names))
    explained = scorer.explain(scorer.parse(nothing), len(scorer.feature_names))
    assert explained.probabilities[0] == explained.probabilities[1]
    assert all(d["value"] is None for d in explained.drivers[0])


@pytest.mark.parametrize("name", ["booster", "events pipeline"])
def test_numeric_scorers_refuse_text(scorers: dict[str, Scorer[Any]], name: str) -> None:
    scorer = scorers[name]
    assert scorer.numeric_only
    columns = FeatureColumns.from_mappings([{"total_orders": "3"}], scorer.feature_names)
    with pytest.raises(InvalidFeatureValueError, match="'total_orders' has a value that is not"):
        scorer.parse(columns)


def test_the_attributes_scorer_takes_text_and_numbers_but_refuses_other_types(
    scorers: dict[str, Scorer[Any]],
) -> None:
    scorer = scorers["attributes pipeline"]
    assert not scorer.numeric_only
    unseen = FeatureColumns.from_mappings([{"plan": "weekly", "tenure": 3}], scorer.feature_names)
    explained = scorer.explain(scorer.parse(unseen), 2)
    assert any(d["value"] == "weekly" for d in explained.drivers[0])
    refused = FeatureColumns.from_mappings([{"plan": True}], scorer.feature_names)
    with pytest.raises(InvalidFeatureValueError, match="'plan' holds a value of another type"):
        scorer.parse(refused)


def test_only_a_numeric_model_over_the_online_features_is_online(
    scorers: dict[str, Scorer[Any]],
) -> None:
    def serving(name: str) -> ServingModel:
        created = datetime(2024, 1, 1, tzinfo=UTC)
        return ServingModel(name, "t", scorers[name], {}, created, kind="test")

    assert serving("booster").online
    assert serving("events pipeline").online
    assert not serving("attributes pipeline").online


def test_a_served_events_pipeline_scores_and_explains_like_the_trained_model() -> None:
    trained = events_model()
    scorer = PipelineScorer(trained)
    matrix = simulate_customers(300, seed=5).features
    frame = pd.DataFrame(matrix, columns=list(FEATURE_NAMES))
    columns = FeatureColumns(len(matrix), [matrix[:, j].tolist() for j in range(matrix.shape[1])])
    batch = scorer.parse(columns)
    expected = trained.predict_proba(frame)
    np.testing.assert_allclose(scorer.predict(batch), expected, rtol=0, atol=1e-12)
    explained = scorer.explain(batch, 3)
    np.testing.assert_allclose(explained.probabilities, expected, rtol=0, atol=1e-12)
    assert explained.drivers == trained.explain(frame, 3)
    contrib, bias = trained.contributions(frame)
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, trained.raw_margin(frame), atol=1e-9)


def test_risk_levels_match_the_bands_vectorised() -> None:
    probabilities = np.array([0.0, 0.399, 0.4, 0.699, 0.7, 1.0])
    assert risk_levels(probabilities, 0.4, 0.7) == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
