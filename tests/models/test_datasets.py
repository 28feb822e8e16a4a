"""Models on real public data, fed through the customers service's HTTP API.

* Telco: the customer file is imported with ``POST /v1/customers/import``, the labelled set read
  back with ``GET /v1/training-sets/customers`` and trained with the prediction pipeline.
* Online Retail: every invoice is replayed as an event through ``POST /v1/events?backfill=true``;
  a model trained on point-in-time sets (stacked cutoffs up to 2011-06-01, 90-day horizon,
  time-ordered CV) is evaluated at the later cutoff 2011-09-10 against the recency baseline.
* Leakage: the same pipeline on shuffled labels must be no better than chance.

Skipped when ``../shared/datasets`` (beside the project root) is absent.
"""

from __future__ import annotations

import csv
import gzip
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
TELCO = DATASETS / "telco_customer_churn.csv"
RETAIL = DATASETS / "online_retail.csv.gz"

pytestmark = [
    pytest.mark.datasets,
    pytest.mark.skipif(not DATASETS.is_dir(), reason="../shared/datasets is absent"),
    pytest.mark.timeout(900),
]

#: Point-in-time training cutoffs (stacked, for time-ordered CV) and the later evaluation cutoff.
TRAIN_CUTOFFS = ["2011-03-01", "2011-04-01", "2011-05-01", "2011-06-01"]
EVAL_CUTOFF = "2011-09-10"
HORIZON = 90
#: Measured figures, printed at the end of the module (pytest -s) for the closing note.
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
async def service(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, token_signer: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The customers service in-process on its own SQLite file (no workers: nothing here needs
    the outbox relayed)."""
    from churn_customers.config import Settings
    from churn_customers.main import create_app
    from testkit import serve_in_process

    db = tmp_path_factory.mktemp("datasets") / "customers.db"
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{db}",
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=f"datasets-{uuid.uuid4().hex[:8]}",
        run_workers=False,
        log_json=False,
        log_level="WARNING",
    )
    app = create_app(settings, token_verifier=token_signer.verifier())
    async with serve_in_process(app) as client:
        client.timeout = httpx.Timeout(300.0)
        yield client
    if FIGURES:
        print("\ndataset figures:", FIGURES)


def _headers(token_signer: Any, role: str = "analyst") -> dict[str, str]:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    return {"Authorization": f"Bearer {token_signer.issue(tenant_id, role=role)}"}


async def _wait_for_import(
    client: httpx.AsyncClient, headers: dict[str, str], import_id: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        report = (await client.get(f"/v1/customers/imports/{import_id}", headers=headers)).json()
        if report["status"] in ("succeeded", "failed"):
            return dict(report)
        time.sleep(0.1)
    raise AssertionError("the import did not finish")


# --------------------------------------------------------------------------- Telco


async def test_telco_imported_through_the_api_trains_a_calibrated_model(
    service: httpx.AsyncClient, token_signer: Any
) -> None:
    import pandas as pd

    from churn_prediction.training.procedure import train_labelled

    headers = _headers(token_signer)
    started = time.perf_counter()
    response = await service.post(
        "/v1/customers/import",
        files={"file": (TELCO.name, TELCO.read_bytes(), "text/csv")},
        data={"id_column": "customerID"},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    report = await _wait_for_import(service, headers, response.json()["import_id"])
    assert report["status"] == "succeeded", report
    assert report["rows_imported"] == 7043
    assert report["rows_rejected"] == 0
    import_seconds = time.perf_counter() - started

    exported = await service.get(
        "/v1/training-sets/customers", params={"label": "Churn"}, headers=headers
    )
    assert exported.status_code == 200
    body = exported.json()
    frame = pd.DataFrame(body["rows"], columns=body["columns"])
    assert len(frame) == 7043
    assert frame["TotalCharges"].isna().sum() == 11  # the blank cells arrived as null

    model = train_labelled(frame, "Churn", id_column=body["id_column"])
    metrics = model.metrics
    FIGURES["telco"] = {
        "import_seconds": round(import_seconds, 2),
        "model": metrics["model"],
        "roc_auc": round(metrics["roc_auc"], 4),
        "pr_auc": round(metrics["pr_auc"], 4),
        "brier": round(metrics["brier"], 4),
        "brier_uncalibrated": round(metrics["brier_uncalibrated"], 4),
        "positive_rate": round(metrics["positive_rate"], 4),
        "ece": round(metrics["ece"], 4),
        "train_seconds": metrics["duration_seconds"],
    }
    assert metrics["n_rows"] == 7043
    assert metrics["positive_rate"] == pytest.approx(0.265, abs=0.001)
    assert metrics["roc_auc"] >= 0.84
    assert metrics["brier"] <= metrics["brier_uncalibrated"]
    # Issue 13: calibration within 0.03 (expected calibration error, out-of-fold). The issue's
    # ROC-AUC goal of 0.85 is not reached (0.8485 measured). Out of fold, before calibration,
    # neither LightGBM's settings (defaults, the tuning grid's, slower, stumps) nor the mean of
    # its log-odds and logistic regression's reached it: 0.8492 at best
    # (bench/retail_headroom.py).
    assert metrics["ece"] <= 0.03


# --------------------------------------------------------------------------- Online Retail


def _retail_events() -> list[dict[str, Any]]:
    """One event per (invoice, customer): ``order_placed`` with the invoice total, or
    ``order_returned`` with the absolute total for a cancellation (``C…``)."""
    invoices: dict[tuple[str, str], dict[str, Any]] = {}
    with gzip.open(RETAIL, "rt", encoding="utf-8", newline="") as handle:
        for line in csv.DictReader(handle):
            customer = line["CustomerID"].strip()
            if not customer:
                continue
            customer = customer.removesuffix(".0")
            invoice = line["InvoiceNo"].strip()
            amount = float(line["Quantity"]) * float(line["UnitPrice"])
            entry = invoices.get((invoice, customer))
            if entry is None:
                entry = invoices[(invoice, customer)] = {
                    "at": datetime.fromisoformat(line["InvoiceDate"]).replace(tzinfo=UTC),
                    "amount": 0.0,
                }
            entry["amount"] += amount
    events = []
    for (invoice, customer), entry in invoices.items():
        cancelled = invoice.startswith("C")
        events.append(
            {
                "event_id": f"{invoice}-{customer}",
                "customer_id": customer,
                "type": "order_returned" if cancelled else "order_placed",
                "occurred_at": entry["at"].isoformat(),
                "properties": {
                    "amount": round(
                        abs(entry["amount"]) if cancelled else max(entry["amount"], 0.0), 2
                    )
                },
            }
        )
    events.sort(key=lambda e: e["occurred_at"])
    return events


@pytest.fixture(scope="module")
async def retail(service: httpx.AsyncClient, token_signer: Any) -> dict[str, Any]:
    """A tenant holding the whole Online Retail history, replayed as backfilled events."""
    headers = _headers(token_signer)
    events = _retail_events()
    started = time.perf_counter()
    accepted = 0
    for start in range(0, len(events), 10_000):
        response = await service.post(
            "/v1/events",
            params={"backfill": "true"},
            json={"events": events[start : start + 10_000]},
            headers=headers,
        )
        assert response.status_code == 202, response.text
        accepted += response.json()["accepted"]
    ingest_seconds = time.perf_counter() - started
    assert accepted == len(events)
    # Reported, not asserted: the machines are shared, and no test fails on a time.
    FIGURES["retail_ingest"] = {"events": len(events), "seconds": round(ingest_seconds, 2)}
    return {"headers": headers, "events": len(events)}


async def _point_in_time(
    client: httpx.AsyncClient, headers: dict[str, str], cutoffs: list[str]
) -> dict[str, Any]:
    started = time.perf_counter()
    response = await client.get(
        "/v1/training-sets/events",
        params={"cutoffs": cutoffs, "horizon_days": HORIZON},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    FIGURES.setdefault("export_seconds", {})[",".join(cutoffs)] = round(
        time.perf_counter() - started, 2
    )
    return dict(response.json())


def _training_set(body: dict[str, Any], labels: Any = None) -> Any:
    import numpy as np
    import pandas as pd

    from churn_prediction.training.sets import TrainingSet

    names = body["feature_names"]
    return TrainingSet(
        X=pd.DataFrame(body["features"], columns=names, dtype="float64"),
        y=np.asarray(body["labels"] if labels is None else labels, dtype=np.int64),
        feature_names=names,
        categorical=[],
        groups_time=np.asarray(body["row_cutoffs"]),
        label_source=f"no order in {body['horizon_days']} days after {body['cutoffs']}",
        horizon_days=body["horizon_days"],
    )


async def test_retail_point_in_time_model_beats_recency(
    service: httpx.AsyncClient, retail: dict[str, Any]
) -> None:
    import pandas as pd

    from churn_prediction.training.evaluation import evaluate, recency_baseline_auc
    from churn_prediction.training.procedure import train

    training = await _point_in_time(service, retail["headers"], TRAIN_CUTOFFS)
    assert training["cutoffs"] == TRAIN_CUTOFFS
    model = train(_training_set(training))
    assert model.metrics["cv"].startswith("time-ordered")

    later = await _point_in_time(service, retail["headers"], [EVAL_CUTOFF])
    X = pd.DataFrame(later["features"], columns=later["feature_names"], dtype="float64")
    report = evaluate(model, X, later["labels"])
    baseline = recency_baseline_auc(later["days_since_last_order"], later["labels"])
    FIGURES["retail"] = {
        "train_rows": training["n_rows"],
        "train_positive_rate": round(training["positive_rate"], 4),
        "model": model.metrics["model"],
        "cv_roc_auc": round(model.metrics["roc_auc"], 4),
        "cv": model.metrics["cv"],
        "eval_n_customers": later["n_customers"],
        "eval_positive_rate": round(later["positive_rate"], 4),
        "eval_roc_auc": round(report["roc_auc"], 4),
        "eval_pr_auc": round(report["pr_auc"], 4),
        "eval_brier": round(report["brier"], 4),
        "recency_baseline_roc_auc": round(baseline or 0.0, 4),
    }
    # README: 3,370 customers and a 43.1 % churn rate at 2011-09-10 (lines dated before T).
    # Here every customer with any event counts, including the few whose only history before
    # T is cancellations, so the count is a little higher (3,412 measured).
    assert abs(later["n_customers"] - 3370) <= 70
    assert later["positive_rate"] == pytest.approx(0.431, abs=0.02)
    assert baseline is not None
    assert report["roc_auc"] > baseline


async def test_shuffled_labels_drop_roc_auc_to_chance(
    service: httpx.AsyncClient, retail: dict[str, Any]
) -> None:
    import numpy as np

    from churn_prediction.training.procedure import train

    training = await _point_in_time(service, retail["headers"], TRAIN_CUTOFFS)
    shuffled = np.random.default_rng(7).permutation(np.asarray(training["labels"]))
    model = train(_training_set(training, shuffled))
    FIGURES["leakage_check_shuffled_cv_roc_auc"] = round(model.metrics["roc_auc"], 4)
    assert model.metrics["roc_auc"] == pytest.approx(0.5, abs=0.05)


#: The protocol of issue 13: evaluated at 2011-09-01 on customers with an order before it.
ISSUE_EVAL_CUTOFF = "2011-09-01"


async def test_retail_model_beside_recency_and_bgnbd_at_the_issue_protocol(
    service: httpx.AsyncClient, retail: dict[str, Any]
) -> None:
    import numpy as np
    import pandas as pd
    from scipy.optimize import brentq

    from churn_prediction.training.calibration import sigmoid
    from churn_prediction.training.evaluation import (
        baseline_comparison,
        evaluate,
        expected_calibration_error,
    )
    from churn_prediction.training.procedure import train
    from churn_prediction.training.sets import TrainingSet

    training = await _point_in_time(service, retail["headers"], TRAIN_CUTOFFS)
    ts = _training_set(training)
    started = time.perf_counter()
    model = train(ts)
    train_seconds = time.perf_counter() - started
    plain_started = time.perf_counter()
    plain = train(ts, derived_features=False)
    plain_seconds = time.perf_counter() - plain_started

    later = await _point_in_time(service, retail["headers"], [ISSUE_EVAL_CUTOFF])
    X = pd.DataFrame(later["features"], columns=later["feature_names"], dtype="float64")
    ordered = (X["total_orders"] > 0).to_numpy()
    X = X[ordered].reset_index(drop=True)
    y = np.asarray(later["labels"], dtype=np.int64)[ordered]
    report = evaluate(model, X, y)
    p = model.predict_proba(X)
    held_out = baseline_comparison(y, p, X, HORIZON, seed=0)
    assert held_out is not None
    oof = model.metrics["baselines"]
    # Diagnostics of the two goals not reached (they read the evaluation labels, so they choose
    # nothing: the model above is trained and calibrated before and without them).
    # 1. What these features carry in this window at all: the same pipeline cross-validated
    #    (stratified 5-fold) on the evaluation rows with their own labels.
    in_window = train(
        TrainingSet(X=X, y=y, feature_names=list(X.columns), categorical=[], horizon_days=HORIZON)
    ).metrics["roc_auc"]
    # 2. How much of the calibration error is the base rate alone: the served probabilities
    #    with one log-odds shift that makes their mean the window's churn rate.
    logit = np.log(p / (1.0 - p))
    shift = brentq(lambda d: float(sigmoid(logit + d).mean() - y.mean()), -5.0, 5.0)
    ece_rate_matched = expected_calibration_error(y, sigmoid(logit + shift))
    FIGURES["retail_issue_protocol"] = {
        "eval_n_customers": len(y),
        "eval_positive_rate": round(float(y.mean()), 4),
        "eval_roc_auc": round(report["roc_auc"], 4),
        "eval_roc_auc_without_derived": round(evaluate(plain, X, y)["roc_auc"], 4),
        "eval_pr_auc": round(report["pr_auc"], 4),
        "eval_brier": round(report["brier"], 4),
        "eval_ece": round(report["ece"], 4),
        "eval_mean_predicted": round(float(p.mean()), 4),
        "eval_ece_after_base_rate_shift": round(ece_rate_matched, 4),
        "eval_base_rate_shift_logit": round(shift, 3),
        "in_window_cv_roc_auc": round(in_window, 4),
        "eval_recency": held_out["recency"],
        "eval_bgnbd": held_out["bgnbd"],
        "eval_pareto_nbd": held_out["pareto_nbd"],
        "eval_lift": held_out["lift"],
        "cv_roc_auc": round(model.metrics["roc_auc"], 4),
        "cv_ece": round(model.metrics["ece"], 4),
        "cv_lift": oof["lift"],
        "tuning": model.metrics["tuning"],
        "train_seconds": round(train_seconds, 2),
        "train_seconds_without_derived": round(plain_seconds, 2),
    }
    # The issue's population: 3,324 customers with an order before the cutoff, 43.8 % churn.
    assert abs(len(y) - 3324) <= 30
    assert float(y.mean()) == pytest.approx(0.438, abs=0.01)
    # The textbook baselines as the issue measured them (recency 0.683, BG/NBD and Pareto/NBD
    # 0.729 each).
    assert held_out["recency"]["roc_auc"] == pytest.approx(0.683, abs=0.01)
    assert held_out["bgnbd"]["roc_auc"] == pytest.approx(0.729, abs=0.01)
    assert held_out["pareto_nbd"]["roc_auc"] == pytest.approx(0.729, abs=0.01)
    # Goals reached: above recency and above BG/NBD with a bootstrap interval excluding zero,
    # at the later cutoff and out-of-fold; calibrated within 0.03 out-of-fold.
    assert held_out["lift"]["recency"]["ci_low"] > 0
    assert held_out["lift"]["bgnbd"]["ci_low"] > 0
    assert oof["lift"]["bgnbd"]["ci_low"] > 0
    assert model.metrics["ece"] <= 0.03
    # Not reached (issue 13 asks for 0.76 and an ECE <= 0.03 at 2011-09-01): 0.7375 and 0.083
    # measured.
    assert report["roc_auc"] > held_out["bgnbd"]["roc_auc"]
    # Why not the ROC-AUC: fitted on this window's own labels, these features rank no better
    # (0.743 measured; 0.746 for LightGBM trained on the training cutoffs plus four fifths of
    # this window). Also tried in bench/retail_headroom.py, each judged first on an earlier
    # window (trained up to 2011-03-01, evaluated at 2011-06-01), none reaching 0.75 here:
    # monthly or two-weekly cutoffs from 2011-01-01; distinct order days in 30/90/180/365 days,
    # share of active months, longest and last gaps; the mean of both candidates' log-odds;
    # stumps. The invoice totals replayed as events carry no more signal.
    assert in_window < 0.76
    assert abs(in_window - report["roc_auc"]) < 0.02
    # Why not the calibration: the error is the base rate alone. The model predicts 52 % on
    # average for a window whose churn rate is 43.8 % (June to August, the last training
    # window, had 51 %; September to November holds the Christmas orders) and one log-odds
    # shift, which needs the labels, brings the ECE within 0.03 (0.026 measured). One year of
    # history holds no earlier autumn to learn the season from, and a fixed correction would
    # not do: the shift needed is -0.43 here, and +0.40 for the model trained up to 2011-03-01
    # evaluated at 2011-06-01 (bench/retail_headroom.py).
    assert float(p.mean()) - float(y.mean()) > 0.05
    assert ece_rate_matched <= 0.03
