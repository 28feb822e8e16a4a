"""In-process scoring latency of the served model kinds, with drivers on and off.

Each model goes through the registry's round trip first (artifact text → ``load_version``
with the feature-schema check), so what is timed is exactly what a replica serves:

* ``default booster``: the global default (LightGBM over the behavioural features, simulated
  history, the service's default size);
* ``events pipeline``: a ``training.train`` model on simulated behavioural features (what an
  events-trained tenant model looks like; it scores the online stream);
* ``telco pipeline``: a ``training.train_labelled`` model on the Telco file (attribute schema,
  categorical columns), when ``shared/datasets/telco_customer_churn.csv`` is present.

Single row: median over ``--single`` calls. 10,000 rows: best of ``--repeat`` calls.

    uv run python bench/scoring_latency.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_prediction.config import Settings
from churn_prediction.models import ModelVersion
from churn_prediction.registry.default_model import train_default_model
from churn_prediction.registry.loading import BOOSTER, PIPELINE, encode_artifact, load_version
from churn_prediction.scoring.scorer import FeatureColumns, Scorer
from churn_prediction.scoring.serving import ServingModel
from churn_prediction.training.procedure import train, train_labelled
from churn_prediction.training.sets import TrainingSet
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES
from churn_shared.db import utcnow

TELCO = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "telco_customer_churn.csv"


def median_ms(n: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def best_ms(n: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def served(
    version: str, kind: str, artifact: str, features: list[str], **extra: Any
) -> ServingModel:
    row = ModelVersion(
        version=version,
        tenant_id=None if kind == BOOSTER else "bench",
        features=features,
        metrics={},
        artifact=artifact,
        created_at=utcnow(),
        kind=kind,
        **extra,
    )
    return load_version(row)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    settings = Settings()
    booster, _ = train_default_model(settings)
    default = served("default-1", BOOSTER, booster.to_string(), list(FEATURE_NAMES))

    history = simulate_customers(6000, seed=7)
    events_ts = TrainingSet(
        X=pd.DataFrame(history.features, columns=list(FEATURE_NAMES)),
        y=history.labels.astype(np.int64),
        feature_names=list(FEATURE_NAMES),
        categorical=[],
    )
    events_model = train(events_ts)
    events = served(
        "events-bench",
        PIPELINE,
        encode_artifact(events_model),
        list(FEATURE_NAMES),
        feature_schema=events_model.feature_schema,
        training_source={"source": "events"},
    )

    rows = simulate_customers(args.rows, seed=11).features
    print(f"rows={args.rows} single-row calls={args.single} repeat={args.repeat}")
    print(f"{'model':<34}{'drivers':>8}{'1 row (ms)':>12}{f'{args.rows} rows (ms)':>18}")
    for label, serving in (
        (f"default booster ({default.version})", default),
        (f"events pipeline ({events_model.model_name})", events),
    ):
        time_scorer(label, serving.model, matrix_columns(rows), matrix_columns(rows[:1]), args)

    if TELCO.exists():
        frame = pd.read_csv(TELCO)
        trained = train_labelled(frame, "Churn", id_column="customerID")
        telco = served(
            "telco-bench",
            PIPELINE,
            encode_artifact(trained),
            trained.feature_names,
            feature_schema=trained.feature_schema,
            training_source={"source": "customers", "label": "Churn"},
        )
        features = frame[trained.feature_names]
        big = features.sample(args.rows, replace=True, random_state=0).reset_index(drop=True)
        first = features.iloc[:1].reset_index(drop=True)
        label = f"telco pipeline ({trained.model_name})"
        time_scorer(label, telco.model, frame_columns(big), frame_columns(first), args)
        print(
            f"telco CV: roc_auc={trained.metrics['roc_auc']:.4f} "
            f"brier={trained.metrics['brier']:.4f} "
            f"(uncalibrated {trained.metrics['brier_uncalibrated']:.4f})"
        )
    else:
        print(f"(no Telco file at {TELCO}: the Telco pipeline is skipped)")


def matrix_columns(matrix: np.ndarray[Any, Any]) -> FeatureColumns:
    return FeatureColumns(len(matrix), [matrix[:, j].tolist() for j in range(matrix.shape[1])])


def frame_columns(frame: pd.DataFrame) -> FeatureColumns:
    return FeatureColumns(len(frame), [frame[name].tolist() for name in frame.columns])


def time_scorer(
    label: str, model: Scorer[Any], rows: FeatureColumns, one: FeatureColumns, args: Any
) -> None:
    """The model call a replica makes, on input parsed once beforehand."""
    batch, single_row = model.parse(rows), model.parse(one)
    for drivers in (False, True):
        if drivers:
            single = median_ms(args.single, partial(model.explain, single_row, 3))
            many = best_ms(args.repeat, partial(model.explain, batch, 3))
        else:
            single = median_ms(args.single, partial(model.predict, single_row))
            many = best_ms(args.repeat, partial(model.predict, batch))
        print(f"{label:<34}{'on' if drivers else 'off':>8}{single:>12.3f}{many:>18.1f}")


if __name__ == "__main__":
    main()
