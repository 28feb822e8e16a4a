"""Cohorts (saved segments): CRUD, ``segment=`` on the list, export and bulk actions, stats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work


async def seed(app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]) -> None:
    """c0..c3 each with one order of 100 * (i + 1) three days ago; plans gold/free alternate;
    probabilities 0.1, 0.5, 0.8, 0.9."""
    now = datetime.now(UTC)
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "customer_id": f"c{i}",
            "type": "order_placed",
            "occurred_at": (now - timedelta(days=3)).isoformat(),
            "properties": {"amount": 100.0 * (i + 1)},
        }
        for i in range(4)
    ]
    assert (
        await client.post("/v1/events", json={"events": events}, headers=tenant["headers"])
    ).status_code == 202
    for i in range(4):
        patched = await client.patch(
            f"/v1/customers/c{i}",
            json={"attributes": {"plan": "gold" if i % 2 else "free"}},
            headers=tenant["headers"],
        )
        assert patched.status_code == 200
    probabilities = [0.1, 0.5, 0.8, 0.9]
    async with unit_of_work(app.state.session_factory) as session:
        await EventIngestService(session).record_scores(
            [
                TenantScore(
                    tenant["id"],
                    ChurnScoreComputedV1(
                        customer_id=f"c{i}",
                        churn_probability=p,
                        risk_level="high" if p >= 0.7 else "medium" if p >= 0.4 else "low",
                        model_version="m-1",
                        scored_at=now,
                    ),
                )
                for i, p in enumerate(probabilities)
            ]
        )


async def test_a_cohort_is_saved_used_as_a_segment_and_measured(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    await seed(app, client, tenant)
    h = tenant["headers"]
    created = await client.post(
        "/v1/cohorts",
        json={"name": "At risk", "filter": {"min_probability": 0.4}},
        headers=h,
    )
    assert created.status_code == 201, created.text
    cohort = created.json()
    assert cohort["filter"]["min_probability"] == 0.4
    dup = await client.post("/v1/cohorts", json={"name": "At risk", "filter": {}}, headers=h)
    assert dup.status_code == 409

    listed = await client.get(
        "/v1/customers", params={"segment": cohort["id"], "attr.plan": "gold"}, headers=h
    )
    assert [c["customer_id"] for c in listed.json()["items"]] == ["c1", "c3"]
    exported = await client.get("/v1/customers/export", params={"segment": cohort["id"]}, headers=h)
    assert exported.text.count("\r\n") == 4  # header + c1, c2, c3

    stats = (await client.get(f"/v1/cohorts/{cohort['id']}/stats", headers=h)).json()
    assert stats["size"] == 3
    assert stats["risk_levels"] == {"medium": 1, "high": 2}
    assert stats["mean_probability"] == pytest.approx((0.5 + 0.8 + 0.9) / 3)
    # Σ p * spend_last_90d: 0.5 * 200 + 0.8 * 300 + 0.9 * 400
    assert stats["revenue_at_risk"] == pytest.approx(700.0)

    tagged = await client.post(
        "/v1/customers/bulk",
        json={"action": "tag", "tag": "vip", "filter": {"segment": cohort["id"]}},
        headers=h,
    )
    assert tagged.json()["changed"] == 3

    patched = await client.patch(
        f"/v1/cohorts/{cohort['id']}", json={"filter": {"risk_level": ["high"]}}, headers=h
    )
    assert patched.status_code == 200
    listed = await client.get("/v1/customers", params={"segment": cohort["id"]}, headers=h)
    assert [c["customer_id"] for c in listed.json()["items"]] == ["c2", "c3"]
    assert [c["name"] for c in (await client.get("/v1/cohorts", headers=h)).json()["items"]] == [
        "At risk"
    ]

    # Another tenant sees neither the cohort nor its members.
    o = other_tenant["headers"]
    assert (await client.get(f"/v1/cohorts/{cohort['id']}", headers=o)).status_code == 404
    assert (await client.get(f"/v1/cohorts/{cohort['id']}/stats", headers=o)).status_code == 404
    foreign = await client.get("/v1/customers", params={"segment": cohort["id"]}, headers=o)
    assert foreign.status_code == 404
    assert (await client.get("/v1/cohorts", headers=o)).json()["items"] == []

    assert (await client.delete(f"/v1/cohorts/{cohort['id']}", headers=h)).status_code == 204
    gone = await client.get("/v1/customers", params={"segment": cohort["id"]}, headers=h)
    assert gone.status_code == 404


async def test_cohort_roles_and_bad_bodies(
    client: httpx.AsyncClient, tenant: dict[str, Any], token_signer: Any
) -> None:
    viewer = {"Authorization": f"Bearer {token_signer.issue(tenant['id'], role='viewer')}"}
    body = {"name": "x", "filter": {}}
    assert (await client.post("/v1/cohorts", json=body, headers=viewer)).status_code == 403
    assert (await client.get("/v1/cohorts", headers=viewer)).status_code == 200
    for bad in (
        {"name": "", "filter": {}},
        {"name": "x"},
        {"name": "x", "filter": {"risk_level": ["extreme"]}},
        {"name": "x", "filter": {"segment": "another"}},
    ):
        response = await client.post("/v1/cohorts", json=bad, headers=tenant["headers"])
        assert response.status_code == 422, (bad, response.text)
