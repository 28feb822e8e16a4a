"""Retention curves (``GET /v1/cohorts/retention``) on small hand-computed histories."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

#: (customer, event type, time). Months: a and b start in 2024-01, c and d in 2024-02; the
#: tenant's latest order is a's on 2024-04-01, so curves run to April.
HISTORY = [
    ("a", "order_placed", "2024-01-05T10:00:00+00:00"),  # ISO 2024-W01
    ("a", "order_placed", "2024-02-10T10:00:00+00:00"),  # W06
    ("a", "order_placed", "2024-02-20T10:00:00+00:00"),  # W08, same month: counted once
    ("a", "order_placed", "2024-04-01T00:00:00+00:00"),  # W14
    ("b", "order_placed", "2024-01-31T23:59:59+00:00"),  # W05
    ("b", "order_placed", "2024-03-01T00:00:00+00:00"),  # W09
    ("c", "order_placed", "2024-02-01T00:00:00+00:00"),  # W05
    ("c", "order_returned", "2024-03-02T00:00:00+00:00"),  # not an order
    ("c", "login", "2024-04-02T00:00:00+00:00"),  # not an order, after the latest order
    ("d", "order_placed", "2024-02-15T10:00:00+00:00"),  # W07
    ("d", "order_placed", "2024-03-15T10:00:00+00:00"),  # W11
    ("e", "login", "2024-01-02T00:00:00+00:00"),  # never ordered: in no cohort
]


async def _record(
    client: httpx.AsyncClient, tenant: dict[str, Any], history: list[tuple[str, str, str]]
) -> None:
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "customer_id": customer,
            "type": kind,
            "occurred_at": at,
            "properties": {"amount": 10.0} if kind.startswith("order") else {},
        }
        for customer, kind, at in history
    ]
    response = await client.post(
        "/v1/events",
        params={"backfill": "true"},
        json={"events": events},
        headers=tenant["headers"],
    )
    assert response.status_code == 202, response.text


async def _retention(
    client: httpx.AsyncClient, tenant: dict[str, Any], **params: Any
) -> dict[str, Any]:
    response = await client.get("/v1/cohorts/retention", params=params, headers=tenant["headers"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_monthly_and_weekly_curves_match_the_hand_computation(
    client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    await _record(client, tenant, HISTORY)
    # Another tenant's orders (same customer ids, earlier) change nothing here.
    await _record(client, other_tenant, [("a", "order_placed", "2023-06-01T00:00:00+00:00")])

    assert await _retention(client, tenant, period="month") == {
        "period": "month",
        "cohorts": [
            # a: Jan, Feb, Apr; b: Jan, Mar.
            {"cohort": "2024-01", "size": 2, "retention": [1.0, 0.5, 0.5, 0.5]},
            # c: Feb only; d: Feb, Mar.
            {"cohort": "2024-02", "size": 2, "retention": [1.0, 0.5, 0.0]},
        ],
    }
    # The default period is the month.
    assert (await _retention(client, tenant))["period"] == "month"

    weekly = await _retention(client, tenant, period="week")
    a = [0.0] * 14
    a[0] = a[5] = a[7] = a[13] = 1.0
    assert weekly == {
        "period": "week",
        "cohorts": [
            {"cohort": "2024-W01", "size": 1, "retention": a},  # a: W01, W06, W08, W14
            # b: W05, W09; c: W05.
            {"cohort": "2024-W05", "size": 2, "retention": [1.0, 0, 0, 0, 0.5, 0, 0, 0, 0, 0]},
            {"cohort": "2024-W07", "size": 1, "retention": [1.0, 0, 0, 0, 1.0, 0, 0, 0]},
        ],
    }

    assert await _retention(client, other_tenant) == {
        "period": "month",
        "cohorts": [{"cohort": "2023-06", "size": 1, "retention": [1.0]}],
    }


async def test_limit_keeps_the_latest_periods_cohorts(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    await _record(client, tenant, HISTORY)
    # Feb, Mar and Apr: only the February cohort started in them.
    assert await _retention(client, tenant, period="month", limit=3) == {
        "period": "month",
        "cohorts": [{"cohort": "2024-02", "size": 2, "retention": [1.0, 0.5, 0.0]}],
    }
    assert (await _retention(client, tenant, period="month", limit=2))["cohorts"] == []


async def test_filters_and_segments_select_whose_orders_count(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    await _record(client, tenant, HISTORY)
    h = tenant["headers"]
    for customer in ("a", "c"):
        patched = await client.patch(
            f"/v1/customers/{customer}", json={"attributes": {"plan": "gold"}}, headers=h
        )
        assert patched.status_code == 200, patched.text
    gold = {
        "period": "month",
        # Curves still run to the tenant's latest order (April), zeros included.
        "cohorts": [
            {"cohort": "2024-01", "size": 1, "retention": [1.0, 1.0, 0.0, 1.0]},
            {"cohort": "2024-02", "size": 1, "retention": [1.0, 0.0, 0.0]},
        ],
    }
    assert await _retention(client, tenant, **{"period": "month", "attr.plan": "gold"}) == gold
    assert await _retention(client, tenant, q="b") == {
        "period": "month",
        "cohorts": [{"cohort": "2024-01", "size": 1, "retention": [1.0, 0.0, 1.0, 0.0]}],
    }

    created = await client.post(
        "/v1/cohorts", json={"name": "Gold", "filter": {"attributes": {"plan": "gold"}}}, headers=h
    )
    assert created.status_code == 201, created.text
    assert await _retention(client, tenant, segment=created.json()["id"]) == gold
    # A segment and a filter combine.
    assert (await _retention(client, tenant, segment=created.json()["id"], q="c"))["cohorts"] == [
        {"cohort": "2024-02", "size": 1, "retention": [1.0, 0.0, 0.0]}
    ]


async def test_no_orders_and_bad_requests(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    assert await _retention(client, tenant, period="week") == {"period": "week", "cohorts": []}
    h = tenant["headers"]
    for params in (
        {"period": "day"},
        {"limit": 0},
        {"limit": 261},
        {"min_probability": 0.9, "max_probability": 0.1},
    ):
        response = await client.get("/v1/cohorts/retention", params=params, headers=h)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    unknown = await client.get(
        "/v1/cohorts/retention", params={"segment": str(uuid.uuid4())}, headers=h
    )
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")


# --------------------------------------------------------------------------- Online Retail

DATASETS = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"
RETAIL = DATASETS / "online_retail.csv.gz"


def _retail_invoices() -> Any:
    """The invoice lines of Online Retail that name a customer. As in the textbook cohort
    analysis of this file (December 2010: 948 customers), every invoice counts as activity,
    cancellations (``C…``) included."""
    import pandas as pd

    lines = pd.read_csv(
        RETAIL,
        dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": str},
        parse_dates=["InvoiceDate"],
    )
    lines = lines[lines["CustomerID"].notna()].copy()
    lines["CustomerID"] = lines["CustomerID"].str.removesuffix(".0")
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    return lines


def _pandas_cohorts(orders: Any, period: str) -> dict[str, tuple[int, list[float]]]:
    """The classic cohort analysis: each customer's cohort is the period of their first
    invoice; per cohort and period offset, the distinct customers invoicing, over the cohort's
    size; up to the file's last period (zeros kept)."""
    import pandas as pd

    at = orders["InvoiceDate"]
    if period == "month":
        start = at.dt.to_period("M").dt.to_timestamp()
    else:
        start = at.dt.normalize() - pd.to_timedelta(at.dt.day_of_week, unit="D")  # the Monday
    frame = pd.DataFrame({"customer": orders["CustomerID"], "start": start})
    frame["cohort"] = frame.groupby("customer")["start"].transform("min")

    def offset(later: Any, earlier: Any) -> Any:
        if period == "month":
            return (later.dt.year - earlier.dt.year) * 12 + later.dt.month - earlier.dt.month
        return (later - earlier).dt.days // 7

    frame["offset"] = offset(frame["start"], frame["cohort"])
    active = frame.groupby(["cohort", "offset"])["customer"].nunique().unstack(fill_value=0)
    last = frame["start"].max()
    expected = {}
    for cohort, row in active.iterrows():
        size = int(row[0])
        length = int(offset(pd.Series([last]), pd.Series([cohort])).iloc[0]) + 1
        if period == "month":
            label = f"{cohort.year}-{cohort.month:02d}"
        else:
            iso = cohort.isocalendar()
            label = f"{iso[0]}-W{iso[1]:02d}"
        expected[label] = (size, [float(row.get(k, 0)) / size for k in range(length)])
    return expected


@pytest.mark.datasets
@pytest.mark.skipif(not RETAIL.is_file(), reason="../shared/datasets is absent")
@pytest.mark.timeout(600)
async def test_online_retail_matches_the_classic_pandas_cohort_analysis(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    """Every Online Retail invoice (one ``order_placed`` per invoice and customer, through
    ``POST /v1/events`` in batches of 10,000) gives the curves pandas computes from the file."""
    orders = _retail_invoices()
    invoices = (
        orders.groupby(["InvoiceNo", "CustomerID"])
        .agg(at=("InvoiceDate", "min"), amount=("amount", "sum"))
        .reset_index()
        .sort_values("at")
    )
    events = [
        {
            "event_id": f"{invoice}-{customer}",
            "customer_id": customer,
            "type": "order_placed",
            "occurred_at": at.tz_localize("UTC").isoformat(),
            "properties": {"amount": round(abs(float(amount)), 2)},
        }
        for invoice, customer, at, amount in invoices.itertuples(index=False)
    ]
    for start in range(0, len(events), 10_000):
        response = await client.post(
            "/v1/events",
            params={"backfill": "true"},
            json={"events": events[start : start + 10_000]},
            headers=tenant["headers"],
        )
        assert response.status_code == 202, response.text

    for period in ("month", "week"):
        body = await _retention(client, tenant, period=period)
        expected = _pandas_cohorts(orders, period)
        got = {c["cohort"]: (c["size"], c["retention"]) for c in body["cohorts"]}
        assert list(got) == sorted(expected), period  # oldest first, the same cohorts
        for label, (size, curve) in expected.items():
            assert got[label][0] == size, (period, label)
            assert got[label][1] == pytest.approx(curve, abs=1e-4), (period, label)
    monthly = await _retention(client, tenant, period="month")
    # The textbook figures of this file: 13 monthly cohorts, December 2010 the largest.
    assert len(monthly["cohorts"]) == 13
    assert monthly["cohorts"][0]["cohort"] == "2010-12"
    assert monthly["cohorts"][0]["size"] == 948
