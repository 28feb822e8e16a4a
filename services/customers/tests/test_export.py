"""The customer export (``GET /v1/customers/export``): CSV and XLSX, filtered, paged while
streaming, formula injection neutralised, tenant- and role-checked."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import openpyxl
import pytest
from fastapi import FastAPI

from churn_customers import exporting
from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1, Driver
from churn_shared.db import unit_of_work

T0 = datetime(2026, 11, 1, tzinfo=UTC)
HOSTILE = {
    "formula": '=HYPERLINK("http://evil.example","x")',
    "plus": "+1+2",
    "minus": "-2 apples",
    "at": "@SUM(A1)",
    "tab": "\tleading tab",
    "cr": "\rleading cr",
}


async def seed(app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]) -> None:
    people = {
        f"c{i}": {"plan": "gold" if i % 2 else "free", "seats": i - 5, "name": f"Person {i}"}
        for i in range(8)
    }
    people["c7"].update(HOSTILE)
    for cid, attributes in people.items():
        response = await client.post(
            "/v1/customers",
            json={"customer_id": cid, "attributes": attributes},
            headers=tenant["headers"],
        )
        assert response.status_code == 201
    drivers = [
        Driver(
            feature="payment_failures_last_90d",
            value=3.0,
            contribution=1.5,
            direction="increases_risk",
        ),
        Driver(feature="logins_last_30d", value=0.0, contribution=0.25, direction="increases_risk"),
    ]
    async with unit_of_work(app.state.session_factory) as session:
        await EventIngestService(session).record_scores(
            [
                TenantScore(
                    tenant["id"],
                    ChurnScoreComputedV1(
                        customer_id=f"c{i}",
                        churn_probability=0.1 * i + 0.05,
                        risk_level="high" if i >= 6 else "medium" if i >= 4 else "low",
                        model_version="m-9",
                        scored_at=T0,
                        drivers=drivers,
                    ),
                )
                for i in range(7)  # c7 stays unscored
            ]
        )


def read_csv(body: bytes) -> list[dict[str, str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def read_xlsx(body: bytes) -> list[dict[str, Any]]:
    book = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    rows = list(book.active.iter_rows(values_only=True))
    header = rows[0]
    # Read-only rows end at their last non-empty cell.
    return [
        dict(zip(header, row + (None,) * (len(header) - len(row)), strict=True)) for row in rows[1:]
    ]


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exporting, "EXPORT_PAGE_SIZE", 3)  # 8 customers: 3 pages


@pytest.mark.usefixtures("small_pages")
async def test_csv_holds_every_matching_customer_with_score_drivers_and_attributes(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    await seed(app, client, tenant)
    await seed(app, client, other_tenant)
    response = await client.get("/v1/customers/export", headers=tenant["headers"])
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="customers.csv"' in response.headers["content-disposition"]
    rows = read_csv(response.content)
    assert [r["customer_id"] for r in rows] == [f"c{i}" for i in range(8)]
    assert list(rows[0])[:10] == list(exporting.FIXED_COLUMNS)
    c6 = rows[6]
    assert float(c6["churn_probability"]) == pytest.approx(0.65)
    assert c6["risk_level"] == "high"
    assert c6["model_version"] == "m-9"
    assert c6["driver_1"] == "payment_failures_last_90d=3 (+1.500)"
    assert c6["driver_2"] == "logins_last_30d=0 (+0.250)"
    assert c6["driver_3"] == ""
    assert c6["plan"] == "free"
    assert c6["seats"] == "1"
    assert c6["name"] == "Person 6"
    assert rows[0]["seats"] == "-5"  # a number is data, not text: never prefixed
    c7 = rows[7]
    assert c7["churn_probability"] == ""
    assert c7["driver_1"] == ""
    for name, value in HOSTILE.items():
        assert c7[name] == "'" + value, name


async def test_filters_select_the_rows_in_both_formats(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    await seed(app, client, tenant)
    params = [("risk_level", "high"), ("risk_level", "medium"), ("attr.plan", "gold")]
    as_csv = await client.get(
        "/v1/customers/export", params=[*params, ("format", "csv")], headers=tenant["headers"]
    )
    assert [r["customer_id"] for r in read_csv(as_csv.content)] == ["c5"]
    everyone = await client.get(
        "/v1/customers/export", params={"format": "xlsx"}, headers=tenant["headers"]
    )
    assert everyone.status_code == 200
    assert everyone.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    rows = read_xlsx(everyone.content)
    assert [r["customer_id"] for r in rows] == [f"c{i}" for i in range(8)]
    assert rows[6]["churn_probability"] == pytest.approx(0.65)
    assert rows[6]["seats"] == 1
    assert rows[0]["seats"] == -5
    assert rows[6]["driver_1"] == "payment_failures_last_90d=3 (+1.500)"
    assert rows[7]["churn_probability"] is None
    for name, value in HOSTILE.items():
        assert rows[7][name] == "'" + value, name
    high = await client.get(
        "/v1/customers/export",
        params=[*params, ("format", "xlsx")],
        headers=tenant["headers"],
    )
    assert [r["customer_id"] for r in read_xlsx(high.content)] == ["c5"]


async def test_viewers_may_not_export_and_bad_requests_are_422(
    client: httpx.AsyncClient, tenant: dict[str, Any], token_signer: Any
) -> None:
    viewer = {"Authorization": f"Bearer {token_signer.issue(tenant['id'], role='viewer')}"}
    denied = await client.get("/v1/customers/export", headers=viewer)
    assert denied.status_code == 403
    for params in ({"format": "pdf"}, {"min_probability": 2}, {'attr.a"b': "x"}):
        response = await client.get(
            "/v1/customers/export", params=params, headers=tenant["headers"]
        )
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
