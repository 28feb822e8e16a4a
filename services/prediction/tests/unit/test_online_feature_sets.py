"""Models over either profile contract version serve the online stream (pure: registry rows in
memory, no database): a model trained on the version-1 feature list still loads and scores
profiles that carry the version-2 history features, a version-2 model loads beside it, and a
model reading anything else is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn_prediction.exceptions import ModelSchemaMismatchError, TrainingSetError
from churn_prediction.models import ModelVersion
from churn_prediction.registry.loading import PIPELINE, encode_artifact, load_version
from churn_prediction.scoring.scorer import FeatureColumns
from churn_prediction.training.derived import SUPERSEDED_BY
from churn_prediction.training.model import TrainedModel
from churn_prediction.training.procedure import train
from churn_prediction.training.sets import TrainingSet
from churn_prediction.training.simulation import simulate_customers
from churn_prediction.training_jobs.runner import events_training_set
from churn_shared.contracts import (
    FEATURE_NAMES,
    HISTORY_FEATURE_NAMES,
    PROFILE_FEATURE_NAMES,
    EventTrainingSet,
)

CUTOFFS = ["2024-01-01", "2024-04-01"]


def _frame(names: tuple[str, ...], seed: int) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    history = simulate_customers(300, seed=seed)
    frame = pd.DataFrame(history.features, columns=list(FEATURE_NAMES))
    rng = np.random.default_rng(seed)
    for name in HISTORY_FEATURE_NAMES:
        if name in names:
            frame[name] = rng.normal(size=len(frame))
    return frame[list(names)], history.labels.astype(np.int64)


def _train(names: tuple[str, ...]) -> TrainedModel:
    parts = [_frame(names, seed) for seed in (5, 6)]
    ts = TrainingSet(
        X=pd.concat([X for X, _ in parts], ignore_index=True),
        y=np.concatenate([y for _, y in parts]),
        feature_names=list(names),
        categorical=[],
        groups_time=np.repeat(np.asarray(CUTOFFS), 300),
        horizon_days=90,
    )
    return train(ts, candidates=("lightgbm",), n_splits=2)


@pytest.fixture(scope="module")
def models() -> dict[int, TrainedModel]:
    return {1: _train(FEATURE_NAMES), 2: _train(PROFILE_FEATURE_NAMES)}


def _row(trained: TrainedModel, version: str) -> ModelVersion:
    return ModelVersion(
        version=version,
        tenant_id="t",
        features=list(trained.feature_names),
        metrics={},
        artifact=encode_artifact(trained),
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        kind=PIPELINE,
        feature_schema=trained.feature_schema,
        training_source={"source": "events", "cutoffs": CUTOFFS, "horizon_days": 90},
    )


def test_a_model_of_the_first_profile_version_still_loads_and_scores_new_profiles(
    models: dict[int, TrainedModel],
) -> None:
    old = load_version(_row(models[1], "v1"))
    assert old.online
    assert list(old.model.feature_names) == list(FEATURE_NAMES)
    profile, _ = _frame(PROFILE_FEATURE_NAMES, seed=9)
    records = profile.head(5).to_dict("records")
    names = old.model.feature_names
    # Profiles now carry the history features too: the old model reads its own by name.
    with_history = old.model.predict(old.model.parse(FeatureColumns.from_mappings(records, names)))
    without = old.model.predict(
        old.model.parse(
            FeatureColumns.from_mappings(
                [{k: v for k, v in r.items() if k in FEATURE_NAMES} for r in records], names
            )
        )
    )
    np.testing.assert_allclose(with_history, without)
    np.testing.assert_allclose(with_history, models[1].predict_proba(profile.head(5)[list(names)]))


def test_a_model_of_the_second_profile_version_loads_and_uses_the_history_features(
    models: dict[int, TrainedModel],
) -> None:
    new = load_version(_row(models[2], "v2"))
    assert new.online
    assert list(new.model.feature_names) == list(PROFILE_FEATURE_NAMES)
    # Derived features the history features supersede are left out: each is defined once.
    derived = models[2].metrics["derived_features"]
    assert derived == ["bgnbd_expected_purchases", "bgnbd_p_alive", "orders_per_30d"]
    assert not set(derived) & set(SUPERSEDED_BY)
    assert set(SUPERSEDED_BY) <= set(models[1].metrics["derived_features"])


def test_an_events_model_over_another_feature_list_is_refused() -> None:
    # Some of the history features only: no profile version's list.
    partial = _train(FEATURE_NAMES + HISTORY_FEATURE_NAMES[:2])
    with pytest.raises(ModelSchemaMismatchError, match="online features of one profile"):
        load_version(_row(partial, "v-partial"))


def _part(names: tuple[str, ...], cutoff: str) -> EventTrainingSet:
    frame, labels = _frame(names, seed=3)
    return EventTrainingSet(
        feature_names=list(names),
        customer_ids=[str(i) for i in range(len(frame))],
        features=frame.to_numpy().tolist(),
        labels=labels.tolist(),
        cutoff=cutoff,
        cutoffs=[cutoff],
        row_cutoffs=[cutoff] * len(frame),
        horizon_days=90,
        days_since_last_order=frame["days_since_last_order"].tolist(),
        positive_rate=float(labels.mean()),
        n_customers=len(frame),
        n_rows=len(frame),
    )


@pytest.mark.parametrize("names", [FEATURE_NAMES, PROFILE_FEATURE_NAMES])
def test_point_in_time_sets_of_either_profile_version_train(names: tuple[str, ...]) -> None:
    ts = events_training_set([_part(names, c) for c in CUTOFFS], 90)
    assert ts.feature_names == list(names)
    assert list(ts.X.columns) == list(names)


def test_point_in_time_sets_of_mixed_versions_are_refused() -> None:
    parts = [_part(FEATURE_NAMES, CUTOFFS[0]), _part(PROFILE_FEATURE_NAMES, CUTOFFS[1])]
    with pytest.raises(TrainingSetError, match="online feature sets"):
        events_training_set(parts, 90)
