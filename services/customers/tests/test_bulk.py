"""Bulk actions (``POST /v1/customers/bulk``): tag/untag/delete on ids or a filter, dry runs,
roles, limits, and the ``CustomerDeletedV1`` a deletion publishes through the outbox."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from churn_customers import bulk
from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1, CustomerTopics
from churn_shared.db import unit_of_work
from testkit import read_topic


def as_role(token_signer: Any, tenant: dict[str, Any], role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_signer.issue(tenant['id'], role=role)}"}


async def seed(app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]) -> None:
    """c0..c5 with events; c4 and c5 scored high, the others low."""
    now = datetime.now(UTC)
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "customer_id": f"c{i}",
            "type": "order_placed",
            "occurred_at": (now - timedelta(days=3)).isoformat(),
            "properties": {"amount": 10},
        }
        for i in range(6)
    ]
    posted = await client.post("/v1/events", json={"events": events}, headers=tenant["headers"])
    assert posted.status_code == 202
    async with unit_of_work(app.state.session_factory) as session:
        await EventIngestService(session).record_scores(
            [
                TenantScore(
                    tenant["id"],
                    ChurnScoreComputedV1(
                        customer_id=f"c{i}",
                        churn_probability=0.9 if i >= 4 else 0.1,
                        risk_level="high" if i >= 4 else "low",
                        model_version="m-1",
                        scored_at=now,
                    ),
                )
                for i in range(6)
            ]
        )


async def ids(client: httpx.AsyncClient, tenant: dict[str, Any], **params: Any) -> list[str]:
    response = await client.get("/v1/customers", params=params, headers=tenant["headers"])
    assert response.status_code == 200, response.text
    return [item["customer_id"] for item in response.json()["items"]]


async def test_tag_by_filter_untag_by_ids_with_dry_runs(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any], token_signer: Any
) -> None:
    await seed(app, client, tenant)
    analyst = as_role(token_signer, tenant, "analyst")
    body = {"action": "tag", "tag": "win-back", "filter": {"risk_level": ["high"]}}
    dry = await client.post("/v1/customers/bulk", json={**body, "dry_run": True}, headers=analyst)
    assert dry.json() == {"action": "tag", "dry_run": True, "matched": 2, "changed": 0}
    assert await ids(client, tenant, tag="win-back") == []
    done = await client.post("/v1/customers/bulk", json=body, headers=analyst)
    assert done.json() == {"action": "tag", "dry_run": False, "matched": 2, "changed": 2}
    again = await client.post(
        "/v1/customers/bulk",
        json={"action": "tag", "tag": "win-back", "customer_ids": ["c3", "c4", "nobody"]},
        headers=analyst,
    )
    assert again.json()["matched"] == 2  # "nobody" does not exist
    assert again.json()["changed"] == 1  # c4 had the tag already
    assert await ids(client, tenant, tag="win-back") == ["c3", "c4", "c5"]
    assert await ids(client, tenant, tag="win-back", risk_level="low") == ["c3"]
    detail = await client.get("/v1/customers/c4", headers=tenant["headers"])
    assert detail.json()["tags"] == ["win-back"]
    untag = await client.post(
        "/v1/customers/bulk",
        json={"action": "untag", "tag": "win-back", "customer_ids": ["c4", "c0"]},
        headers=analyst,
    )
    assert untag.json() == {"action": "untag", "dry_run": False, "matched": 2, "changed": 1}
    assert await ids(client, tenant, tag="win-back") == ["c3", "c5"]


async def test_delete_removes_everything_and_publishes_customer_deleted(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: dict[str, Any],
    other_tenant: dict[str, Any],
    token_signer: Any,
    kafka_bootstrap: str,
) -> None:
    await seed(app, client, tenant)
    await seed(app, client, other_tenant)
    admin = as_role(token_signer, tenant, "admin")
    await client.post(
        "/v1/customers/bulk",
        json={"action": "tag", "tag": "x", "customer_ids": ["c4"]},
        headers=admin,
    )
    body = {"action": "delete", "filter": {"risk_level": ["high"]}}
    dry = await client.post("/v1/customers/bulk", json={**body, "dry_run": True}, headers=admin)
    assert dry.json()["matched"] == 2
    assert len(await ids(client, tenant)) == 6
    done = await client.post("/v1/customers/bulk", json=body, headers=admin)
    assert done.status_code == 200, done.text
    assert done.json() == {"action": "delete", "dry_run": False, "matched": 2, "changed": 2}
    assert await ids(client, tenant) == ["c0", "c1", "c2", "c3"]
    assert await ids(client, other_tenant) == [f"c{i}" for i in range(6)]  # same ids, kept
    for cid in ("c4", "c5"):
        assert (await client.get(f"/v1/customers/{cid}", headers=admin)).status_code == 404
    # Events, profile, history and tags went with them: the same id comes back empty.
    await client.post("/v1/customers", json={"customer_id": "c4"}, headers=admin)
    fresh = (await client.get("/v1/customers/c4", headers=admin)).json()
    assert fresh["tags"] == []
    assert fresh["features"] is None
    assert (await client.get("/v1/customers/c4/scores", headers=admin)).json()["items"] == []

    deleted: set[str] = set()

    def deletion(value: bytes, _: list[tuple[str, bytes]]) -> bool:
        envelope = orjson.loads(value)
        if envelope["tenant_id"] == tenant["id"]:
            assert envelope["event_type"] == "CustomerDeletedV1"
            deleted.add(envelope["payload"]["customer_id"])
        return deleted == {"c4", "c5"}

    assert await read_topic(kafka_bootstrap, CustomerTopics.CUSTOMER_DELETED, deletion)

    single = await client.delete("/v1/customers/c0", headers=admin)
    assert single.status_code == 204

    def single_deletion(value: bytes, _: list[tuple[str, bytes]]) -> bool:
        envelope = orjson.loads(value)
        return envelope["tenant_id"] == tenant["id"] and envelope["payload"]["customer_id"] == "c0"

    assert await read_topic(kafka_bootstrap, CustomerTopics.CUSTOMER_DELETED, single_deletion)


async def test_roles_bodies_and_limits(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: dict[str, Any],
    token_signer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await seed(app, client, tenant)
    analyst = as_role(token_signer, tenant, "analyst")
    viewer = as_role(token_signer, tenant, "viewer")
    delete = {"action": "delete", "customer_ids": ["c1"]}
    assert (
        await client.post("/v1/customers/bulk", json=delete, headers=analyst)
    ).status_code == 403
    assert (await client.delete("/v1/customers/c1", headers=analyst)).status_code == 403
    tag = {"action": "tag", "tag": "t", "customer_ids": ["c1"]}
    assert (await client.post("/v1/customers/bulk", json=tag, headers=viewer)).status_code == 403
    assert await ids(client, tenant, tag="t") == []
    for bad in (
        {"action": "tag", "tag": "t", "customer_ids": ["c1"], "filter": {}},  # both
        {"action": "tag", "tag": "t"},  # neither
        {"action": "tag", "customer_ids": ["c1"]},  # no tag
        {"action": "delete", "tag": "t", "customer_ids": ["c1"]},  # a tag on delete
        {"action": "merge", "customer_ids": ["c1"]},
        {"action": "tag", "tag": "t", "customer_ids": [f"x{i}" for i in range(10_001)]},
        {"action": "tag", "tag": "t", "filter": {"min_probability": 3}},
    ):
        response = await client.post("/v1/customers/bulk", json=bad, headers=analyst)
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    monkeypatch.setattr(bulk, "MAX_BULK_CUSTOMERS", 3)
    too_many = await client.post(
        "/v1/customers/bulk", json={"action": "tag", "tag": "t", "filter": {}}, headers=analyst
    )
    assert too_many.status_code == 422
    assert await ids(client, tenant, tag="t") == []
