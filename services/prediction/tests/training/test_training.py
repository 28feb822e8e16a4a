"""Training, calibration, explanations and artifacts (pure: no database, no broker)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn_prediction.training.card import model_card
from churn_prediction.training.model import TrainedModel
from churn_prediction.training.procedure import train, train_labelled
from churn_prediction.training.sets import TrainingSet, labelled_training_set, map_label

DATASETS = Path(__file__).resolve().parents[4] / ".." / "shared" / "datasets"
TELCO = DATASETS / "telco_customer_churn.csv"


def _telco() -> pd.DataFrame:
    if not TELCO.is_file():
        pytest.skip(f"{TELCO} is absent (datasets live outside the repository)")
    return pd.read_csv(TELCO)


@pytest.fixture(scope="module")
def telco() -> pd.DataFrame:
    return _telco()


@pytest.fixture(scope="module")
def telco_model(telco: pd.DataFrame) -> TrainedModel:
    return train_labelled(telco, "Churn", id_column="customerID", seed=42)


@pytest.fixture(scope="module")
def telco_linear(telco: pd.DataFrame) -> TrainedModel:
    ts = labelled_training_set(telco, "Churn", id_column="customerID")
    return train(ts, seed=42, candidates=("logistic_regression",))


def synthetic(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.exponential(30, size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n)
    logit = -0.5 + 1.2 * x1 + 0.02 * x2 + np.where(plan == "basic", 0.8, -0.4)
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "customer": [f"c{i}" for i in range(n)],
            "x1": x1,
            "x2": x2.round(1).astype(str),
            "plan": plan,
            "churned": np.where(churned, "Yes", "No"),
        }
    )
    frame.loc[rng.random(n) < 0.05, "x1"] = np.nan
    frame.loc[rng.random(n) < 0.05, "x2"] = " "
    frame.loc[rng.random(n) < 0.05, "plan"] = None
    return frame


# ------------------------------------------------------------------ Telco (needs datasets)


@pytest.mark.datasets
def test_telco_cross_validated_roc_auc_reaches_the_published_level(
    telco_model: TrainedModel,
) -> None:
    m = telco_model.metrics
    assert m["roc_auc"] >= 0.84
    assert m["n_rows"] == 7043
    assert m["positive_rate"] == pytest.approx(1869 / 7043)
    assert m["model"] in ("logistic_regression", "lightgbm")
    assert set(m["candidates"]) == {"logistic_regression", "lightgbm"}
    assert m["pr_auc"] == pytest.approx(m["candidates"][m["model"]]["pr_auc"], abs=0.01)
    assert m["pr_auc"] > 0.6


@pytest.mark.datasets
def test_telco_calibrated_brier_is_no_worse_than_uncalibrated(telco_model: TrainedModel) -> None:
    m = telco_model.metrics
    assert m["brier"] <= m["brier_uncalibrated"]
    assert m["calibration"]["method"] in ("sigmoid", "isotonic", "none")


@pytest.mark.datasets
def test_telco_reports_calibration_table_threshold_and_importance(
    telco_model: TrainedModel,
) -> None:
    m = telco_model.metrics
    table = m["calibration_table"]
    assert len(table) == 10
    assert sum(b["count"] for b in table) == 7043
    for b in table:
        if b["count"] >= 100:
            assert abs(b["mean_predicted"] - b["observed_rate"]) < 0.1
    assert m["at_threshold"]["threshold"] == 0.7
    assert 0 < m["at_threshold"]["precision"] <= 1
    assert 0 < m["at_threshold"]["recall"] <= 1
    importance = m["feature_importance"]
    assert set(importance) == set(telco_model.feature_names)
    assert "customerID" not in importance
    assert sum(importance.values()) == pytest.approx(1.0, abs=1e-4)
    assert next(iter(importance)) in ("Contract", "tenure")


@pytest.mark.datasets
def test_telco_infers_total_charges_as_numeric(telco: pd.DataFrame) -> None:
    ts = labelled_training_set(telco, "Churn", id_column="customerID")
    assert "TotalCharges" not in ts.categorical
    assert int(ts.X["TotalCharges"].isna().sum()) == 11
    assert "Contract" in ts.categorical
    assert "customerID" not in ts.feature_names


@pytest.mark.datasets
def test_shuffled_labels_drop_roc_auc_to_chance(telco: pd.DataFrame) -> None:
    shuffled = telco.copy()
    rng = np.random.default_rng(7)
    shuffled["Churn"] = rng.permutation(shuffled["Churn"].to_numpy())
    m = train_labelled(shuffled, "Churn", id_column="customerID", seed=42).metrics
    assert m["roc_auc"] == pytest.approx(0.5, abs=0.05)
    for scores in m["candidates"].values():
        assert scores["roc_auc"] == pytest.approx(0.5, abs=0.05)


@pytest.mark.datasets
def test_same_seed_gives_identical_metrics(telco: pd.DataFrame, telco_model: TrainedModel) -> None:
    again = train_labelled(telco, "Churn", id_column="customerID", seed=42)

    def stable(m: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in m.items() if k != "duration_seconds"}

    assert stable(again.metrics) == stable(telco_model.metrics)
    head = telco.head(200)
    np.testing.assert_array_equal(again.predict_proba(head), telco_model.predict_proba(head))


@pytest.mark.datasets
@pytest.mark.parametrize("which", ["chosen", "linear"])
def test_contributions_add_up_to_the_raw_margin(
    which: str, telco: pd.DataFrame, telco_model: TrainedModel, telco_linear: TrainedModel
) -> None:
    model = telco_model if which == "chosen" else telco_linear
    rows = telco.sample(500, random_state=1)
    contrib, bias = model.contributions(rows)
    assert contrib.shape == (500, len(model.feature_names))
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, model.raw_margin(rows), atol=1e-6)


@pytest.mark.datasets
def test_both_model_kinds_are_explained_exactly(
    telco: pd.DataFrame, telco_linear: TrainedModel
) -> None:
    lgbm = train(
        labelled_training_set(telco.head(2500), "Churn", id_column="customerID"),
        seed=42,
        candidates=("lightgbm",),
    )
    assert lgbm.model_name == "lightgbm"
    assert telco_linear.model_name == "logistic_regression"
    rows = telco.head(300)
    contrib, bias = lgbm.contributions(rows)
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, lgbm.raw_margin(rows), atol=1e-6)


@pytest.mark.datasets
def test_explain_gives_top_drivers_with_values_and_direction(
    telco: pd.DataFrame, telco_model: TrainedModel
) -> None:
    rows = telco.head(20)
    explanations = telco_model.explain(rows, top_k=3)
    contrib, _ = telco_model.contributions(rows)
    assert len(explanations) == 20
    for i, drivers in enumerate(explanations):
        assert len(drivers) == 3
        sizes = [abs(d["contribution"]) for d in drivers]
        assert sizes == sorted(sizes, reverse=True)
        assert sizes[0] == pytest.approx(np.abs(contrib[i]).max())
        for d in drivers:
            assert d["direction"] == (
                "increases_risk" if d["contribution"] >= 0 else "decreases_risk"
            )
            raw = rows.iloc[i][d["feature"]]
            if isinstance(d["value"], str):
                assert d["value"] == str(raw).strip()


@pytest.mark.datasets
@pytest.mark.parametrize("which", ["chosen", "linear"])
def test_unseen_categories_and_missing_values_score(
    which: str, telco: pd.DataFrame, telco_model: TrainedModel, telco_linear: TrainedModel
) -> None:
    model = telco_model if which == "chosen" else telco_linear
    rows = telco.head(3).drop(columns=["Churn", "customerID"]).copy()
    rows["Contract"] = ["Ten years", None, "Month-to-month"]
    rows["tenure"] = [np.nan, 5, None]
    rows["TotalCharges"] = [" ", "", "12.5"]
    p = model.predict_proba(rows)
    assert p.shape == (3,)
    assert np.all((p >= 0) & (p <= 1))
    drivers = model.explain(rows)
    assert all(len(d) == 3 for d in drivers)
    contrib, bias = model.contributions(rows)
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, model.raw_margin(rows), atol=1e-6)


@pytest.mark.datasets
def test_large_and_small_batches_score_identically(
    telco: pd.DataFrame, telco_model: TrainedModel
) -> None:
    rows = telco.head(600)
    whole = telco_model.predict_proba(rows)
    pieces = np.concatenate(
        [telco_model.predict_proba(rows.iloc[i : i + 50]) for i in range(0, 600, 50)]
    )
    np.testing.assert_array_equal(whole, pieces)


@pytest.mark.datasets
def test_missing_feature_column_is_a_clear_error(
    telco: pd.DataFrame, telco_model: TrainedModel
) -> None:
    rows = telco.head(2).drop(columns=["tenure", "Contract"])
    with pytest.raises(ValueError, match=r"missing feature column\(s\): .*tenure") as info:
        telco_model.predict_proba(rows)
    assert "Contract" in str(info.value)
    with pytest.raises(ValueError, match="tenure"):
        telco_model.validate_schema(rows)


@pytest.mark.datasets
def test_artifact_round_trip_preserves_predictions_and_schema(
    telco: pd.DataFrame, telco_model: TrainedModel
) -> None:
    loaded = TrainedModel.from_bytes(telco_model.to_bytes())
    rows = telco.tail(100)
    np.testing.assert_array_equal(loaded.predict_proba(rows), telco_model.predict_proba(rows))
    assert loaded.feature_schema == telco_model.feature_schema
    contract = next(f for f in loaded.feature_schema["features"] if f["name"] == "Contract")
    assert contract["categories"] == ["Month-to-month", "One year", "Two year"]


@pytest.mark.datasets
def test_model_card_describes_data_metrics_and_caveats(telco_model: TrainedModel) -> None:
    card = model_card(telco_model, "Telco churn model v1")
    assert card.startswith("# Telco churn model v1")
    for heading in ("## Data", "## Metrics", "## Calibration", "## Intended use", "## Caveats"):
        assert heading in card
    assert f"{telco_model.metrics['roc_auc']:.3f}" in card
    assert "Contract" in card


# ------------------------------------------------------------------ synthetic (always run)


def test_artifact_rejects_foreign_bytes() -> None:
    with pytest.raises(ValueError, match="not a churn model artifact"):
        TrainedModel.from_bytes(pickle.dumps({"kind": "something else"}))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["Yes", "no", " YES "], [1, 0, 1]),
        ([True, False, True], [1, 0, 1]),
        ([1, 0, 0], [1, 0, 0]),
        ([1.0, 0.0, 1.0], [1, 0, 1]),
        (["churned", "retained", "true"], [1, 0, 1]),
    ],
)
def test_label_values_map_to_zero_and_one(values: list[Any], expected: list[int]) -> None:
    assert map_label(pd.Series(values)).tolist() == expected


@pytest.mark.parametrize("values", [["Yes", "maybe", "No"], [0, 1, 2], ["a", "b", "a"]])
def test_unrecognised_label_values_are_rejected_by_name(values: list[Any]) -> None:
    with pytest.raises(ValueError, match="not a yes/no churn label"):
        map_label(pd.Series(values), "Churn")


def test_missing_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="1 missing value"):
        map_label(pd.Series(["Yes", None, "No"]), "Churn")


def test_unknown_label_or_id_column_is_rejected() -> None:
    frame = synthetic(60)
    with pytest.raises(ValueError, match="label column 'Churn' not found"):
        labelled_training_set(frame, "Churn")
    with pytest.raises(ValueError, match="id column 'id' not found"):
        labelled_training_set(frame, "churned", id_column="id")
    with pytest.raises(ValueError, match="feature columns not found"):
        labelled_training_set(frame, "churned", feature_columns=["x1", "nope"])


def test_single_class_labels_cannot_be_cross_validated() -> None:
    frame = synthetic(100)
    frame["churned"] = "No"
    with pytest.raises(ValueError, match="each class"):
        train_labelled(frame, "churned", id_column="customer")


def test_identifier_like_text_columns_are_excluded_when_no_id_is_given() -> None:
    ts = labelled_training_set(synthetic(200), "churned")
    assert "customer" not in ts.feature_names
    assert "customer" in ts.excluded_columns
    assert ts.categorical == ["plan"]
    assert ts.X["x2"].dtype == np.float64


def test_training_reports_progress_up_to_done() -> None:
    seen: list[tuple[float, str]] = []
    train_labelled(
        synthetic(), "churned", id_column="customer", progress=lambda p, s: seen.append((p, s))
    )
    percents = [p for p, _ in seen]
    assert percents == sorted(percents)
    assert percents[0] == 0.0
    assert seen[-1] == (100.0, "done")
    assert any("calibrating" in s for _, s in seen)


def test_synthetic_signal_is_found_and_explained() -> None:
    model = train_labelled(synthetic(), "churned", id_column="customer", seed=3)
    assert model.metrics["roc_auc"] > 0.7
    assert model.metrics["brier"] <= model.metrics["brier_uncalibrated"]
    contrib, bias = model.contributions(synthetic(50, seed=9))
    margin = model.raw_margin(synthetic(50, seed=9))
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, margin, atol=1e-6)


def test_a_numeric_column_missing_on_every_row_still_trains_and_explains_exactly() -> None:
    # A tenant whose customers never log in, or a file column left blank throughout: the
    # linear model keeps the column (as a constant) instead of dropping it from its matrix.
    frame = synthetic().drop(columns=["customer"])
    frame["never_recorded"] = np.full(len(frame), np.nan)
    ts = labelled_training_set(frame, "churned")
    assert "never_recorded" in ts.feature_names
    model = train(ts, seed=0, candidates=("logistic_regression",))
    rows = frame.drop(columns=["churned"]).head(20)
    contrib, bias = model.contributions(rows)
    assert contrib.shape == (20, len(ts.feature_names))
    np.testing.assert_allclose(contrib.sum(axis=1) + bias, model.raw_margin(rows), atol=1e-9)
    assert np.all(contrib[:, ts.feature_names.index("never_recorded")] == 0.0)


def test_non_numeric_text_in_a_numeric_column_is_rejected_at_scoring() -> None:
    model = train_labelled(
        synthetic(), "churned", id_column="customer", feature_columns=["x1", "x2"]
    )
    rows = pd.DataFrame({"x1": [0.1], "x2": ["lots"]})
    with pytest.raises(ValueError, match="'x2' expects numbers"):
        model.predict_proba(rows)


def test_time_ordered_training_sets_validate_on_later_cutoffs() -> None:
    frames = [synthetic(300, seed=s) for s in range(3)]
    frame = pd.concat(frames, ignore_index=True)
    base = labelled_training_set(frame, "churned", id_column="customer")
    cutoffs = np.repeat(np.array(["2024-01-01", "2024-04-01", "2024-07-01"]), 300)
    ts = TrainingSet(
        X=base.X,
        y=base.y,
        feature_names=base.feature_names,
        categorical=base.categorical,
        groups_time=cutoffs,
        label_source="no order within 90 days of the cutoff",
    )
    model = train(ts, seed=1)
    m = model.metrics
    assert m["cv"].startswith("time-ordered (2 folds")
    assert m["n_evaluated"] == 600
    assert m["n_rows"] == 900
    assert not math.isnan(m["roc_auc"])
    assert m["label_source"] == "no order within 90 days of the cutoff"


def test_point_in_time_training_reports_the_textbook_baselines_and_calibration() -> None:
    from churn_prediction.training.simulation import simulate_customers
    from churn_shared.contracts import FEATURE_NAMES

    parts = [simulate_customers(400, seed=s) for s in (11, 12, 13)]
    ts = TrainingSet(
        X=pd.DataFrame(np.vstack([p.features for p in parts]), columns=list(FEATURE_NAMES)),
        y=np.concatenate([p.labels for p in parts]).astype(np.int64),
        feature_names=list(FEATURE_NAMES),
        categorical=[],
        groups_time=np.repeat(np.array(["2024-01-01", "2024-04-01", "2024-07-01"]), 400),
        label_source="no order within 90 days of the cutoff",
        horizon_days=90,
    )
    m = train(ts, seed=1).metrics
    baselines = m["baselines"]
    assert baselines["horizon_days"] == 90
    # On the latest held-out cutoff: one BG/NBD fit, on those 400 customers.
    assert baselines["cutoff"] == "2024-07-01"
    assert len(baselines["bgnbd"]["params"]) == 1
    # Pareto/NBD costs more than the rest of the comparison: evaluate computes it, not training.
    assert "pareto_nbd" not in baselines
    assert "pareto_nbd" not in baselines["lift"]
    for name in ("recency", "bgnbd"):
        lift = baselines["lift"][name]
        model_auc = baselines["model"]["roc_auc"]
        assert lift["roc_auc_diff"] == pytest.approx(model_auc - baselines[name]["roc_auc"])
        assert lift["ci_low"] < lift["roc_auc_diff"] < lift["ci_high"]
    assert 0 <= m["ece"] < 0.1
    # Nested tuning: the first evaluated cutoff has a single earlier one, so no inner folds to
    # tune on (defaults); the later one was tuned on its own training rows only.
    tuning = m["tuning"]["lightgbm"]
    assert len(tuning["grid"]) == 2
    assert len(tuning["chosen_per_fold"]) == 2
    assert tuning["chosen_per_fold"][0] == 0
    card = model_card(train(ts, seed=1), "Shop model")
    assert "## Against the textbook baselines" in card
    assert f"{baselines['bgnbd']['roc_auc']:.3f}" in card
    assert "Pareto/NBD expected purchases |" not in card
    assert f"expected calibration error {m['ece']:.3f}" in card


def test_artifacts_written_before_the_package_split_still_load() -> None:
    """Registry rows hold artifacts pickled when every class lived in ``churn_prediction.training``
    (``_LogisticCandidate``, ``_Calibrator``, ...); they must keep loading."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"tenure": rng.normal(size=200), "plan": rng.choice(["a", "b"], 200)})
    frame["churned"] = (frame["tenure"] + rng.normal(size=200) > 0.5).astype(int)
    trained = train(labelled_training_set(frame, "churned"), candidates=("logistic_regression",))
    payload = {"kind": "churn-prediction-model", "format_version": 1, "model": trained}
    legacy = pickle.dumps(payload, protocol=2)  # text GLOBAL opcodes: "module\nname\n"
    for module, name, old_name in [
        ("model", "TrainedModel", "TrainedModel"),
        ("features", "FeatureSchema", "FeatureSchema"),
        ("features", "FeatureSpec", "FeatureSpec"),
        ("candidates", "LogisticCandidate", "_LogisticCandidate"),
        ("calibration", "Calibrator", "_Calibrator"),
    ]:
        new = f"churn_prediction.training.{module}\n{name}\n".encode()
        assert new in legacy
        legacy = legacy.replace(new, f"churn_prediction.training\n{old_name}\n".encode())
    assert b"churn_prediction.training.model" not in legacy
    loaded = TrainedModel.from_bytes(legacy)
    np.testing.assert_array_equal(loaded.predict_proba(frame), trained.predict_proba(frame))
