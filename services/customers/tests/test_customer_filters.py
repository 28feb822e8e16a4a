"""The customer list's filters (``GET /v1/customers``), alone, combined, with every sort and
across cursor pages, on a real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from churn_customers.models import customers
from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work

T0 = datetime(2026, 10, 1, tzinfo=UTC)

#: id → (probability or None, attributes, days after T0 of the last activity)
PEOPLE: dict[str, tuple[float | None, dict[str, Any], int]] = {
    "ann-1": (0.92, {"email": "Ann@Example.com", "name": "Ann Lee", "plan": "gold"}, 0),
    "ann-2": (0.75, {"email": "ann.b@example.com", "plan": "silver", "seats": 3}, 10),
    "bob-1": (0.55, {"email": "bob@example.com", "name": "Annabel Bob", "vip": True}, 20),
    "bob-2": (0.41, {"plan": "gold", "seats": 3.5, "vip": False}, 30),
    "cat-1": (0.10, {"name": "Cat", "plan": "gold"}, 40),
    "cat-2": (None, {"plan": "gold"}, 50),
}


def level(probability: float) -> str:
    return "high" if probability >= 0.7 else "medium" if probability >= 0.4 else "low"


async def seed(app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]) -> None:
    for cid, (_, attributes, _) in PEOPLE.items():
        created = await client.post(
            "/v1/customers",
            json={"customer_id": cid, "attributes": attributes},
            headers=tenant["headers"],
        )
        assert created.status_code == 201, created.text
    scores = [
        TenantScore(
            tenant["id"],
            ChurnScoreComputedV1(
                customer_id=cid,
                churn_probability=p,
                risk_level=level(p),
                model_version="m-test",
                scored_at=T0,
            ),
        )
        for cid, (p, _, _) in PEOPLE.items()
        if p is not None
    ]
    async with unit_of_work(app.state.session_factory) as session:
        await EventIngestService(session).record_scores(scores)
    async with app.state.engine.begin() as conn:
        for cid, (_, _, days) in PEOPLE.items():
            await conn.execute(
                sa.update(customers)
                .where(customers.c.tenant_id == tenant["id"], customers.c.customer_id == cid)
                .values(updated_at=T0 + timedelta(days=days))
            )


async def walk(
    client: httpx.AsyncClient, tenant: dict[str, Any], params: list[tuple[str, Any]], sort: str
) -> list[str]:
    """Every id the filter matches, page by page (2 a page) in ``sort`` order."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        query = [*params, ("sort", sort), ("limit", 2)]
        if cursor:
            query.append(("cursor", cursor))
        response = await client.get("/v1/customers", params=query, headers=tenant["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        ids.extend(item["customer_id"] for item in body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


CASES: list[tuple[list[tuple[str, Any]], set[str]]] = [
    ([("risk_level", "high")], {"ann-1", "ann-2"}),
    ([("risk_level", "high"), ("risk_level", "low")], {"ann-1", "ann-2", "cat-1"}),
    ([("min_probability", 0.5)], {"ann-1", "ann-2", "bob-1"}),
    ([("max_probability", 0.41)], {"bob-2", "cat-1"}),
    ([("min_probability", 0.4), ("max_probability", 0.8)], {"ann-2", "bob-1", "bob-2"}),
    ([("q", "ann")], {"ann-1", "ann-2", "bob-1"}),  # id prefix, e-mail prefix, name prefix
    ([("q", "ANN@")], {"ann-1"}),  # e-mail, case-insensitive
    ([("q", "cat")], {"cat-1", "cat-2"}),
    ([("q", "zzz")], set()),
    ([("seen_after", (T0 + timedelta(days=20)).isoformat())], {"bob-1", "bob-2", "cat-1", "cat-2"}),
    ([("seen_before", (T0 + timedelta(days=20)).isoformat())], {"ann-1", "ann-2"}),
    ([("attr.plan", "gold")], {"ann-1", "bob-2", "cat-1", "cat-2"}),
    ([("attr.seats", "3")], {"ann-2"}),
    ([("attr.seats", "3.5")], {"bob-2"}),
    ([("attr.vip", "true")], {"bob-1"}),
    ([("attr.vip", "false")], {"bob-2"}),
    ([("attr.plan", "gold"), ("risk_level", "high"), ("risk_level", "low")], {"ann-1", "cat-1"}),
    (
        [
            ("attr.plan", "gold"),
            ("min_probability", 0.05),
            ("seen_after", (T0 + timedelta(days=5)).isoformat()),
        ],
        {"bob-2", "cat-1"},
    ),
]


async def test_every_filter_alone_and_combined_in_every_sort_across_pages(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    await seed(app, client, tenant)
    await seed(app, client, other_tenant)  # the same ids elsewhere: never listed here
    for params, expected in CASES:
        for sort in ("customer_id", "-churn_probability", "-updated_at"):
            ids = await walk(client, tenant, params, sort)
            assert len(ids) == len(set(ids)), (params, sort, ids)
            assert set(ids) == expected, (params, sort, ids)
            if sort == "customer_id":
                assert ids == sorted(expected)
            if sort == "-churn_probability":
                key = {cid: -(PEOPLE[cid][0] or -1.0) for cid in ids}
                assert ids == sorted(ids, key=lambda cid: (key[cid], cid))
            if sort == "-updated_at":
                assert ids == sorted(ids, key=lambda cid: -PEOPLE[cid][2])


async def test_search_follows_edits_of_email_and_name(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    await seed(app, client, tenant)
    h = tenant["headers"]
    patched = await client.patch(
        "/v1/customers/cat-2", json={"attributes": {"email": "Zed@Example.com"}}, headers=h
    )
    assert patched.status_code == 200
    removed = await client.patch(
        "/v1/customers/ann-1", json={"attributes": {"email": None}}, headers=h
    )
    assert removed.status_code == 200
    assert await walk(client, tenant, [("q", "zed")], "customer_id") == ["cat-2"]
    assert await walk(client, tenant, [("q", "ann@")], "customer_id") == []


INVALID: list[list[tuple[str, Any]]] = [
    [("min_probability", 0.8), ("max_probability", 0.2)],
    [("min_probability", 1.5)],
    [("risk_level", "extreme")],
    [("seen_after", "2026-10-02T00:00:00Z"), ("seen_before", "2026-10-01T00:00:00Z")],
    [("seen_after", "2026-10-02T00:00:00")],  # no time zone
    [("seen_before", "0.5")],  # a number is not a time (pydantic: seconds since 1970)
    [('attr.pl"an', "gold")],
    [(f"attr.a{i}", "x") for i in range(11)],
    [("attr.plan", "x" * 256)],
    [("q", "x" * 65)],
]


async def test_an_invalid_filter_is_a_422_problem(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    for params in INVALID:
        response = await client.get("/v1/customers", params=params, headers=tenant["headers"])
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_prefix_search_matches_whatever_its_last_character(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    """The prefix's last character must not matter: under MariaDB's utf8mb4_unicode_ci,
    ``'9' + 1`` is ``':'``, which sorts before the digits, so a prefix ending in 9 (1 in 16
    of the console's random hex prefixes) once matched nothing; and ``%``/``_`` are text."""
    ids = ["run-a9-1", "run-a9-2", "run-a8-1", "run-a-x", "run-a%b", "run-a_b", "run-aXb"]
    for cid in ids:
        created = await client.post(
            "/v1/customers", json={"customer_id": cid}, headers=tenant["headers"]
        )
        assert created.status_code == 201, created.text
    expected = {
        "run-a9": {"run-a9-1", "run-a9-2"},
        "run-a9-": {"run-a9-1", "run-a9-2"},
        "run-a-": {"run-a-x"},
        "run-a%": {"run-a%b"},
        "run-a_": {"run-a_b"},
        "run-": set(ids),
    }
    for prefix, matching in expected.items():
        found = await walk(client, tenant, [("q", prefix)], "customer_id")
        assert set(found) == matching, prefix
