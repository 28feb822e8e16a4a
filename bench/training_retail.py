"""What issue 13's additions cost when training on Online Retail, in one run.

Builds the point-in-time training set of the dataset tests (stacked cutoffs 2011-03-01 to
2011-06-01, 90-day horizon; every invoice an ``order_placed`` or ``order_returned`` event,
features from ``churn_customers.features.point_in_time_rows``, as the customers service exports
them: every profile feature, ``PROFILE_FEATURE_NAMES``) and times ``train()`` in CPU seconds
(median of ``--repeat``) as it now runs and with each addition switched off: the derived
features, the nested LightGBM tuning, the baseline comparison. Prints each time and its ratio
to the plain pipeline (all three off; before issue 13 it also fitted logistic regression with
lbfgs instead of newton-cholesky, which made it about 25 % slower than this plain pipeline).
Then the same training on the version-1 profile features only (``FEATURE_NAMES``, what models
read before the raw-history features), and both models' ROC-AUC at issue 13's protocol
(evaluated at 2011-09-01 on the customers with an order before it) beside recency, BG/NBD and
Pareto/NBD. Needs ``../shared/datasets/online_retail.csv.gz``.

    OPENBLAS_NUM_THREADS=1 uv run python bench/training_retail.py --repeat 5

CPU seconds count the time BLAS threads spin while they wait, which on a busy host swings from
run to run (the plain pipeline measured 0.70 s and 1.38 s in two runs on the same two busy cores,
default threads, and 0.57 s and 0.58 s with one BLAS thread; training's LightGBM uses one
thread below 50,000 rows anyway).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "online_retail.csv.gz"
CUTOFFS = ["2011-03-01", "2011-04-01", "2011-05-01", "2011-06-01"]
EVAL_CUTOFF = "2011-09-01"


@dataclass(frozen=True)
class _Event:
    type: str
    occurred_at: datetime
    properties: Mapping[str, Any]


def _histories() -> dict[str, list[_Event]]:
    invoices: dict[tuple[str, str], list[Any]] = {}
    with gzip.open(DATASET, "rt", encoding="utf-8", newline="") as handle:
        for line in csv.DictReader(handle):
            customer = line["CustomerID"].strip().removesuffix(".0")
            if not customer:
                continue
            key = (line["InvoiceNo"].strip(), customer)
            entry = invoices.setdefault(
                key, [datetime.fromisoformat(line["InvoiceDate"]).replace(tzinfo=UTC), 0.0]
            )
            entry[1] += float(line["Quantity"]) * float(line["UnitPrice"])
    events: dict[str, list[_Event]] = defaultdict(list)
    for (invoice, customer), (at, amount) in invoices.items():
        cancelled = invoice.startswith("C")
        kind = "order_returned" if cancelled else "order_placed"
        value = abs(amount) if cancelled else max(amount, 0.0)
        events[customer].append(_Event(kind, at, {"amount": round(value, 2)}))
    return events


def _point_in_time(
    events: dict[str, list[_Event]], cutoffs: list[str]
) -> tuple[pd.DataFrame, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    from churn_customers.features import point_in_time_rows
    from churn_shared.contracts import PROFILE_FEATURE_NAMES

    moments = [datetime.fromisoformat(c).replace(tzinfo=UTC) for c in cutoffs]
    rows, labels, groups = [], [], []
    for history in events.values():
        for index, features, label in point_in_time_rows(history, moments, timedelta(days=90)):
            rows.append(features)
            labels.append(label)
            groups.append(cutoffs[index])
    X = pd.DataFrame(rows, columns=list(PROFILE_FEATURE_NAMES), dtype="float64")
    return X, np.asarray(labels, dtype=np.int64), np.asarray(groups)


def _training_set(frame: pd.DataFrame, y: Any, groups: Any, names: tuple[str, ...]) -> Any:
    from churn_prediction.training.sets import TrainingSet

    return TrainingSet(
        X=frame[list(names)],
        y=y,
        feature_names=list(names),
        categorical=[],
        groups_time=groups,
        horizon_days=90,
    )


def _none(*_args: object, **_kwargs: object) -> None:
    return None


def _cpu_seconds(run: Callable[[], object], repeat: int) -> float:
    run()  # warm up (imports, first LightGBM call)
    times = []
    for _ in range(repeat):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if not DATASET.is_file():
        raise SystemExit(f"{DATASET} is absent")
    from churn_prediction.training import procedure
    from churn_prediction.training.evaluation import baseline_comparison
    from churn_shared.contracts import FEATURE_NAMES, PROFILE_FEATURE_NAMES

    events = _histories()
    frame, y, groups = _point_in_time(events, CUTOFFS)
    ts = _training_set(frame, y, groups, PROFILE_FEATURE_NAMES)
    print(f"rows: {len(ts.y)}, churn rate {ts.y.mean():.3f}, features {len(ts.feature_names)}")
    grid = getattr(procedure, "LIGHTGBM_GRID")  # noqa: B009 (patched below)
    comparison = getattr(procedure, "baseline_comparison")  # noqa: B009 (patched below)

    def variant(derived: bool, tuning: bool, baselines: bool) -> Callable[[], object]:
        def run() -> object:
            setattr(procedure, "LIGHTGBM_GRID", grid if tuning else grid[:1])  # noqa: B010
            setattr(procedure, "baseline_comparison", comparison if baselines else _none)  # noqa: B010
            try:
                return procedure.train(ts, derived_features=derived)
            finally:
                setattr(procedure, "LIGHTGBM_GRID", grid)  # noqa: B010
                setattr(procedure, "baseline_comparison", comparison)  # noqa: B010

        return run

    plain = _cpu_seconds(variant(False, False, False), args.repeat)
    print(f"plain pipeline (all three off): {plain:.3f} s CPU")
    for label, flags in [
        ("+ baselines", (False, False, True)),
        ("+ nested tuning", (False, True, False)),
        ("+ derived features", (True, False, False)),
        ("all (as now)", (True, True, True)),
    ]:
        seconds = _cpu_seconds(variant(*flags), args.repeat)
        print(f"{label}: {seconds:.3f} s CPU, {seconds / plain:.2f}x the plain pipeline")
    now = seconds
    v1 = _training_set(frame, y, groups, FEATURE_NAMES)
    before = _cpu_seconds(lambda: procedure.train(v1), args.repeat)
    print(
        f"all, on the {len(FEATURE_NAMES)} version-1 profile features: {before:.3f} s CPU "
        f"({now / before:.2f}x that with the history features)"
    )

    held_out, labels, _ = _point_in_time(events, [EVAL_CUTOFF])
    ordered = (held_out["total_orders"] > 0).to_numpy()
    held_out, labels = held_out[ordered].reset_index(drop=True), labels[ordered]
    print(f"held out at {EVAL_CUTOFF}: {len(labels)} customers, churn rate {labels.mean():.3f}")
    for label, names in [("version-1 features", FEATURE_NAMES), ("all", PROFILE_FEATURE_NAMES)]:
        model = procedure.train(_training_set(frame, y, groups, names))
        X = held_out[list(names)]
        report = baseline_comparison(labels, model.predict_proba(X), X, 90.0, seed=0)
        assert report is not None
        lift = report["lift"]
        print(
            f"{label}: ROC-AUC {report['model']['roc_auc']:.4f} (recency "
            f"{report['recency']['roc_auc']:.4f}, BG/NBD {report['bgnbd']['roc_auc']:.4f}, "
            f"Pareto/NBD {report['pareto_nbd']['roc_auc']:.4f}); lift over BG/NBD "
            f"{lift['bgnbd']['roc_auc_diff']:.4f} [{lift['bgnbd']['ci_low']:.4f}, "
            f"{lift['bgnbd']['ci_high']:.4f}]"
        )


if __name__ == "__main__":
    main()
