"""Training-set exports and backfill: point-in-time labels on hand-made histories, the 422s,
tenant isolation, and the proof that the online profile equals the point-in-time export."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from churn_customers.features import compute_features
from churn_customers.repository import StoredEvent
from churn_customers.service import TrainingSetService
from churn_shared.contracts import PROFILE_FEATURE_NAMES, Topics
from churn_shared.db import unit_of_work
from churn_shared.kafka import Envelope
from testkit import read_topic


def at(text: str) -> str:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).isoformat()


def ev(customer_id: str, when: str, kind: str = "order_placed", **props: Any) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "customer_id": customer_id,
        "type": kind,
        "occurred_at": at(when),
        "properties": props,
    }


#: Cutoff 2024-03-01, horizon 30 days: the label window is (2024-03-01, 2024-03-31].
HISTORY = [
    # An order exactly at the cutoff is history (a feature), not the outcome: churned.
    ev("at_cutoff", "2024-02-01", amount=10),
    ev("at_cutoff", "2024-03-01T00:00:00", amount=20),
    # An order exactly at cutoff + horizon is inside the window: retained.
    ev("at_end", "2024-02-10", amount=5),
    ev("at_end", "2024-03-31T00:00:00", amount=5),
    # One second after the window: churned.
    ev("after_end", "2024-02-10", amount=5),
    ev("after_end", "2024-03-31T00:00:01", amount=5),
    # Ordered inside the window: retained; non-order events in the window don't count.
    ev("inside", "2024-01-15", amount=50, discount=5),
    ev("inside", "2024-03-15", amount=50),
    ev("login_only", "2024-02-20", "login"),
    ev("login_only", "2024-03-10", "login"),
    # Nothing at or before the cutoff: excluded.
    ev("newcomer", "2024-03-05", amount=99),
]


async def post(client: httpx.AsyncClient, tenant: dict[str, Any], events: list[Any]) -> None:
    response = await client.post(
        "/v1/events",
        json={"events": events},
        params={"backfill": "true"},
        headers=tenant["headers"],
    )
    assert response.status_code == 202, response.text


async def events_set(
    client: httpx.AsyncClient, tenant: dict[str, Any], **params: Any
) -> httpx.Response:
    return await client.get("/v1/training-sets/events", params=params, headers=tenant["headers"])


class TestPointInTimeLabels:
    async def test_labels_and_features_at_a_cutoff(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        await post(client, tenant, HISTORY)
        response = await events_set(client, tenant, cutoff="2024-03-01", horizon_days=30)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["feature_names"] == list(PROFILE_FEATURE_NAMES)
        labels = dict(zip(body["customer_ids"], body["labels"], strict=True))
        assert labels == {
            "after_end": 1,
            "at_cutoff": 1,
            "at_end": 0,
            "inside": 0,
            "login_only": 1,
        }
        assert body["n_customers"] == 5
        assert body["positive_rate"] == pytest.approx(3 / 5)
        assert body["cutoff"] == "2024-03-01"
        assert body["horizon_days"] == 30
        row = body["customer_ids"].index("at_cutoff")
        features = dict(zip(body["feature_names"], body["features"][row], strict=True))
        assert features["total_orders"] == 2
        assert features["days_since_last_order"] == 0
        assert body["days_since_last_order"][row] == 0
        # Exactly what the shared feature code gives for the events up to the cutoff.
        cutoff = datetime(2024, 3, 1, tzinfo=UTC)
        known = [
            StoredEvent(
                e["customer_id"],
                e["type"],
                datetime.fromisoformat(e["occurred_at"]),
                e["properties"],
            )
            for e in HISTORY
            if e["customer_id"] == "inside" and datetime.fromisoformat(e["occurred_at"]) <= cutoff
        ]
        row = body["customer_ids"].index("inside")
        assert body["features"][row] == list(compute_features(known, cutoff).values())

    async def test_stacked_cutoffs_give_one_row_per_customer_per_cutoff(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        await post(client, tenant, HISTORY)
        response = await client.get(
            "/v1/training-sets/events?cutoffs=2024-03-01&cutoffs=2024-02-05&horizon_days=30",
            headers=tenant["headers"],
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["cutoffs"] == ["2024-02-05", "2024-03-01"]
        assert body["cutoff"] == "2024-03-01"
        rows = list(zip(body["customer_ids"], body["row_cutoffs"], body["labels"], strict=True))
        # At 2024-02-05 only at_cutoff and inside had events; at_cutoff ordered again 03-01.
        assert ("at_cutoff", "2024-02-05", 0) in rows
        assert ("inside", "2024-02-05", 1) in rows
        assert sum(1 for r in rows if r[1] == "2024-02-05") == 2
        assert sum(1 for r in rows if r[1] == "2024-03-01") == 5
        assert body["n_customers"] == 5
        assert body["n_rows"] == 7

    async def test_unknown_outcomes_and_bad_parameters_are_422(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        empty = await events_set(client, tenant, cutoff="2024-03-01", horizon_days=30)
        assert empty.status_code == 422
        await post(client, tenant, HISTORY)
        # The horizon would end after the latest event (2024-03-31T00:00:01): label unknown.
        late = await events_set(client, tenant, cutoff="2024-03-02", horizon_days=30)
        assert late.status_code == 422
        assert late.headers["content-type"].startswith("application/problem+json")
        assert "latest event" in late.json()["detail"]
        assert (
            await events_set(client, tenant, cutoff="2024-03-01", horizon_days=45)
        ).status_code == 422
        assert (
            await events_set(client, tenant, cutoff="2024-13-01", horizon_days=30)
        ).status_code == 422
        assert (await events_set(client, tenant, horizon_days=30)).status_code == 422
        # Nobody had an event before 2023: no rows.
        early = await events_set(client, tenant, cutoff="2023-01-01", horizon_days=30)
        assert early.status_code == 422

    async def test_exports_are_tenant_scoped(
        self,
        client: httpx.AsyncClient,
        tenant: dict[str, Any],
        other_tenant: dict[str, Any],
    ) -> None:
        await post(client, tenant, HISTORY)
        await post(client, other_tenant, [ev("theirs", "2024-01-01", amount=1)])
        await post(client, other_tenant, [ev("theirs", "2024-06-01", amount=1)])
        mine = (await events_set(client, tenant, cutoff="2024-03-01", horizon_days=30)).json()
        theirs = (
            await events_set(client, other_tenant, cutoff="2024-03-01", horizon_days=90)
        ).json()
        assert "theirs" not in mine["customer_ids"]
        assert theirs["customer_ids"] == ["theirs"]
        assert theirs["labels"] == [1]  # the 2024-06-01 order is after 2024-05-30


async def test_backfill_accepts_old_events_and_flags_the_update(
    client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
) -> None:
    await post(
        client,
        tenant,
        [ev("veteran", "2009-05-01", "signup"), ev("veteran", "2010-12-01", amount=42)],
    )
    response = await client.get("/v1/customers/veteran/features", headers=tenant["headers"])
    assert response.status_code == 200
    features = response.json()["features"]
    assert features["total_orders"] == 1
    assert features["total_spent"] == 42
    assert features["orders_last_90d"] == 0
    assert features["days_since_last_order"] > 5 * 365
    assert features["account_age_days"] > 6 * 365

    found = [
        Envelope.from_bytes(raw)
        for raw in await read_topic(
            kafka_bootstrap,
            Topics.CUSTOMER_FEATURES,
            lambda raw, _: orjson.loads(raw)["tenant_id"] == tenant["id"],
        )
    ]
    assert found, "no CustomerFeaturesUpdatedV1 for the backfill"
    assert found[0].payload["customer_id"] == "veteran"
    assert found[0].payload["backfill"] is True
    assert found[0].payload["features"] == features


async def test_online_profile_equals_point_in_time_export(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    """Training and serving agree: the profile stored at ingest (as of its instant) equals the
    point-in-time export computed with that instant as the cutoff, for every customer."""
    now = datetime.now(UTC)

    def recent(cid: str, days_ago: float, kind: str = "order_placed", **props: Any) -> Any:
        return {
            "event_id": uuid.uuid4().hex,
            "customer_id": cid,
            "type": kind,
            "occurred_at": (now - timedelta(days=days_ago)).isoformat(),
            "properties": props,
        }

    batch = [
        recent("a", 400, "signup"),
        recent("a", 200, amount=120.5, discount=10),
        recent("a", 45, amount=30),
        recent("a", 20, "order_returned", amount=30),
        recent("a", 10, "email_sent"),
        recent("a", 9, "email_opened"),
        recent("a", 3, "login"),
        recent("b", 95, amount=9.99),
        recent("b", 60, "payment_failed", amount=9.99),
        recent("b", 50, "support_ticket_opened"),
        recent("b", 40, "loyalty_points_changed", delta=25),
        recent("b", 30, "loyalty_points_changed", balance=10),
        recent("c", 1, "login"),
        recent("d", 700, amount=1000),
        recent("d", 0.5, amount=1, discount=0.5),
    ]
    await post(client, tenant, batch)
    await post(client, tenant, [recent("b", 2, amount=15), recent("c", 0.1, "email_sent")])

    profiles: dict[str, Any] = {}
    for cid in "abcd":
        response = await client.get(f"/v1/customers/{cid}/features", headers=tenant["headers"])
        assert response.status_code == 200
        profiles[cid] = response.json()
    for cid, profile in profiles.items():
        as_of = datetime.fromisoformat(profile["as_of"])
        async with unit_of_work(app.state.session_factory) as session:
            exported = await TrainingSetService(session).events_training_set(
                tenant["id"], [as_of], 30, require_known_labels=False
            )
        row = exported.customer_ids.index(cid)
        online = [profile["features"][name] for name in exported.feature_names]
        assert exported.features[row] == online, cid
