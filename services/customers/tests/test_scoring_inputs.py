"""``POST /v1/internal/scoring-inputs``: what prediction jobs over a filter read, a keyset page
at a time, within the caller's tenant (real database, real broker)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from churn_shared.contracts import PROFILE_FEATURE_NAMES

PATH = "/v1/internal/scoring-inputs"


async def add(
    client: httpx.AsyncClient, tenant: dict[str, Any], customer_id: str, plan: str, orders: int
) -> None:
    created = await client.post(
        "/v1/customers",
        json={"customer_id": customer_id, "attributes": {"plan": plan, "seats": orders}},
        headers=tenant["headers"],
    )
    assert created.status_code == 201, created.text
    if orders:
        events = [
            {
                "event_id": uuid.uuid4().hex,
                "customer_id": customer_id,
                "type": "order_placed",
                "occurred_at": f"2026-0{1 + i}-10T12:00:00Z",
                "properties": {"amount": 10.0},
            }
            for i in range(orders)
        ]
        ingested = await client.post(
            "/v1/events", json={"events": events}, headers=tenant["headers"]
        )
        assert ingested.status_code == 202, ingested.text


async def test_pages_give_profiles_and_attributes_of_the_filtered_customers_in_id_order(
    client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    for customer_id, plan, orders in [
        ("a-1", "gold", 2),
        ("a-2", "silver", 1),
        ("a-3", "gold", 0),
        ("a-4", "gold", 3),
        ("a-5", "gold", 1),
    ]:
        await add(client, tenant, customer_id, plan, orders)
    await add(client, other_tenant, "a-0", "gold", 1)

    seen: list[dict[str, Any]] = []
    after = None
    pages = 0
    while True:
        body: dict[str, Any] = {"filter": {"attributes": {"plan": "gold"}}, "limit": 2}
        if after is None:
            body["count_up_to"] = 100
        else:
            body["after"] = after
        page = await client.post(PATH, json=body, headers=tenant["headers"])
        assert page.status_code == 200, page.text
        data = page.json()
        if after is None:
            assert data["total"] == 4
        pages += 1
        seen += data["customers"]
        after = data["next_after"]
        if after is None:
            break
    assert pages == 3  # 2 + 2 + an empty last page
    assert [c["customer_id"] for c in seen] == ["a-1", "a-3", "a-4", "a-5"]
    by_id = {c["customer_id"]: c for c in seen}
    assert by_id["a-3"]["features"] is None  # no events: no profile
    assert set(by_id["a-4"]["features"]) == set(PROFILE_FEATURE_NAMES)
    assert by_id["a-4"]["features"]["total_orders"] == 3
    assert by_id["a-1"]["attributes"] == {"plan": "gold", "seats": 2}
    # Each one equals what GET /v1/customers/{id}/features gives.
    single = await client.get("/v1/customers/a-4/features", headers=tenant["headers"])
    assert single.json()["features"] == by_id["a-4"]["features"]


async def test_a_bad_filter_is_a_422_and_an_unknown_segment_a_404(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    bad = await client.post(
        PATH, json={"filter": {"risk_level": ["extreme"]}}, headers=tenant["headers"]
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["errors"][0]["loc"][:3] == ["body", "filter", "risk_level"]
    unknown = await client.post(
        PATH, json={"filter": {"segment": "no-such-cohort"}}, headers=tenant["headers"]
    )
    assert unknown.status_code == 404
    too_many = await client.post(PATH, json={"limit": 1001}, headers=tenant["headers"])
    assert too_many.status_code == 422
