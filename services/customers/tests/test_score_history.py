"""A customer's score history (``GET /v1/customers/{id}/scores``), fed by ``churn.scores.v1``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1, Driver, Topics
from churn_shared.db import unit_of_work
from churn_shared.kafka import Envelope
from testkit import wait_for

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def score(
    customer_id: str, probability: float, at: datetime, model: str = "m-1"
) -> ChurnScoreComputedV1:
    return ChurnScoreComputedV1(
        customer_id=customer_id,
        churn_probability=probability,
        risk_level="high" if probability >= 0.7 else "medium" if probability >= 0.4 else "low",
        model_version=model,
        scored_at=at,
        drivers=[
            Driver(
                feature="payment_failures_last_90d",
                value=3.0,
                contribution=1.25,
                direction="increases_risk",
            )
        ],
    )


async def create(client: httpx.AsyncClient, tenant: dict[str, Any], cid: str) -> None:
    response = await client.post(
        "/v1/customers", json={"customer_id": cid}, headers=tenant["headers"]
    )
    assert response.status_code == 201, response.text


async def history(
    client: httpx.AsyncClient, tenant: dict[str, Any], cid: str, **params: Any
) -> httpx.Response:
    return await client.get(f"/v1/customers/{cid}/scores", params=params, headers=tenant["headers"])


async def test_scores_on_the_topic_become_the_history_once_each(
    client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
) -> None:
    await create(client, tenant, "h1")
    scores = [score("h1", p, T0 + timedelta(hours=i)) for i, p in enumerate((0.2, 0.5, 0.9))]
    envelopes = [
        Envelope.wrap(tenant_id=tenant["id"], producer="test", key=s.customer_id, payload=s)
        for s in [*scores, score("ghost", 0.9, T0)]
    ]
    # The last score again in a new envelope (a re-score published twice): kept once. Then a
    # later score on the same key (so the same partition): once it is stored, so is the copy.
    envelopes.append(
        Envelope.wrap(tenant_id=tenant["id"], producer="test", key="h1", payload=scores[-1])
    )
    last = score("h1", 0.6, T0 + timedelta(hours=3))
    envelopes.append(Envelope.wrap(tenant_id=tenant["id"], producer="test", key="h1", payload=last))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                Topics.CHURN_SCORES, envelope.to_bytes(), key=envelope.key.encode()
            )
    finally:
        await producer.stop()

    async def stored_last() -> list[dict[str, Any]] | None:
        items = (await history(client, tenant, "h1")).json()["items"]
        return items if items and items[0]["churn_probability"] == 0.6 else None

    items = (await wait_for(stored_last, 20))[1:]
    assert [i["churn_probability"] for i in items] == [0.9, 0.5, 0.2]
    assert [i["risk_level"] for i in items] == ["high", "medium", "low"]
    assert items[0]["model_version"] == "m-1"
    assert datetime.fromisoformat(items[0]["scored_at"]) == T0 + timedelta(hours=2)
    assert items[0]["drivers"] == [
        {
            "feature": "payment_failures_last_90d",
            "value": 3.0,
            "contribution": 1.25,
            "direction": "increases_risk",
        }
    ]
    assert (await history(client, tenant, "ghost")).status_code == 404


async def test_pages_walk_every_score_newest_first(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    await create(client, tenant, "p1")
    moments = [T0 + timedelta(minutes=i) for i in range(7)]
    moments.append(moments[3])  # the same moment from another model: both kept
    async with unit_of_work(app.state.session_factory) as session:
        await EventIngestService(session).record_scores(
            [
                TenantScore(tenant["id"], score("p1", 0.1 * (i + 1), at))
                for i, at in enumerate(moments[:7])
            ]
            + [TenantScore(tenant["id"], score("p1", 0.33, moments[7], model="m-2"))]
        )
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await history(client, tenant, "p1", **params)
        assert response.status_code == 200, response.text
        seen.extend(response.json()["items"])
        cursor = response.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert pages == 3
    assert len(seen) == 8
    times = [datetime.fromisoformat(i["scored_at"]) for i in seen]
    assert times == sorted(times, reverse=True)
    assert sorted(i["model_version"] for i in seen if times[seen.index(i)] == moments[3]) == [
        "m-1",
        "m-2",
    ]


async def test_history_is_the_tenants_own_and_goes_with_the_customer(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    await create(client, tenant, "d1")
    async with unit_of_work(app.state.session_factory) as session:
        await EventIngestService(session).record_scores(
            [TenantScore(tenant["id"], score("d1", 0.8, T0))]
        )
    assert len((await history(client, tenant, "d1")).json()["items"]) == 1
    foreign = await history(client, other_tenant, "d1")
    assert foreign.status_code == 404
    assert foreign.headers["content-type"].startswith("application/problem+json")
    assert (await history(client, tenant, "d1", cursor="!!")).status_code == 400
    assert (await client.delete("/v1/customers/d1", headers=tenant["headers"])).status_code == 204
    await create(client, tenant, "d1")
    assert (await history(client, tenant, "d1")).json()["items"] == []
