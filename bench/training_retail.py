"""What issue 13's additions cost when training on Online Retail, in one run.

Builds the point-in-time training set of the dataset tests (stacked cutoffs 2011-03-01 to
2011-06-01, 90-day horizon; every invoice an ``order_placed`` or ``order_returned`` event,
features from ``churn_customers.features.point_in_time_rows``, as the customers service exports
them) and times ``train()`` in CPU seconds (median of ``--repeat``) as it now runs and with each
addition switched off: the derived features, the nested LightGBM tuning, the baseline
comparison. Prints each time and its ratio to the plain pipeline (all three off; before
issue 13 it also fitted logistic regression with lbfgs instead of newton-cholesky, which made it
about 25 % slower than this plain pipeline). Needs ``../shared/datasets/online_retail.csv.gz``.

    uv run python bench/training_retail.py --repeat 5
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


@dataclass(frozen=True)
class _Event:
    type: str
    occurred_at: datetime
    properties: Mapping[str, Any]


def _training_set() -> Any:
    from churn_customers.features import point_in_time_rows
    from churn_prediction.training.sets import TrainingSet
    from churn_shared.contracts import FEATURE_NAMES

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
    cutoffs = [datetime.fromisoformat(c).replace(tzinfo=UTC) for c in CUTOFFS]
    rows, labels, groups = [], [], []
    for history in events.values():
        for index, features, label in point_in_time_rows(history, cutoffs, timedelta(days=90)):
            rows.append(features)
            labels.append(label)
            groups.append(CUTOFFS[index])
    return TrainingSet(
        X=pd.DataFrame(rows, columns=list(FEATURE_NAMES), dtype="float64"),
        y=np.asarray(labels, dtype=np.int64),
        feature_names=list(FEATURE_NAMES),
        categorical=[],
        groups_time=np.asarray(groups),
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

    ts = _training_set()
    print(f"rows: {len(ts.y)}, churn rate {ts.y.mean():.3f}")
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


if __name__ == "__main__":
    main()
