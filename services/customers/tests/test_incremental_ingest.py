"""Live ingest keeps each customer's feature state incrementally; through the API, on every
database, the stored profile must equal compute_features over every event stored, after every
POST — with events arriving late, out of order, twice, dated in the future, and loyalty
balances arriving before later deltas."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from churn_customers.features import compute_features
from churn_customers.models import customer_features
from churn_customers.repository import EventRepository, FeatureRepository
from churn_shared.contracts import PROFILE_FEATURE_NAMES
from churn_shared.db import create_session_factory

CUSTOMERS = ["a", "b", "c", "d"]
KINDS = [
    "order_placed",
    "login",
    "email_sent",
    "email_opened",
    "support_ticket_opened",
    "payment_failed",
    "order_returned",
    "loyalty_points_changed",
    "signup",
]


def history(rng: random.Random, now: datetime) -> list[dict[str, Any]]:
    """Random events over two years, many near the 30- and 90-day window edges (the edge
    days are the ones the state reads exactly) and at shared instants."""
    instants = [now - timedelta(days=d, seconds=s) for d in (30, 90) for s in (-60, 0, 30, 3600)]
    events = []
    for index in range(240):
        kind = rng.choice(KINDS)
        if rng.random() < 0.3:
            at = rng.choice(instants)
        else:
            at = now - timedelta(seconds=rng.uniform(60, 2 * 365 * 86_400))
        props: dict[str, Any] = {}
        if kind == "order_placed":
            props = {"amount": round(rng.uniform(0, 300), 2), "discount": rng.choice([0, 5])}
        elif kind == "loyalty_points_changed":
            props = {"balance": rng.randint(0, 900)} if rng.random() < 0.2 else {}
            props.setdefault("delta", rng.randint(-50, 100))
        events.append(
            {
                "event_id": f"e-{index}",
                "customer_id": rng.choice(CUSTOMERS),
                "type": kind,
                "occurred_at": at.isoformat(),
                "properties": props,
            }
        )
    return events


async def expected(engine: AsyncEngine, tenant_id: str) -> dict[str, list[Any]]:
    async with create_session_factory(engine)() as session:
        return await EventRepository(session).for_customers(tenant_id, CUSTOMERS)


async def test_profiles_equal_compute_features_over_every_stored_event(
    client: httpx.AsyncClient, tenant: dict[str, Any], engine: AsyncEngine
) -> None:
    rng = random.Random(8)
    now = datetime.now(UTC)
    events = history(rng, now)
    rng.shuffle(events)
    # One event dated 1.5 s ahead: stored, not counted until it falls due.
    ahead = now + timedelta(seconds=1.5)
    events.append(
        {
            "event_id": "e-ahead",
            "customer_id": "a",
            "type": "login",
            "occurred_at": ahead.isoformat(),
            "properties": {},
        }
    )
    cuts = sorted(rng.sample(range(1, len(events)), 9))
    batches = [events[i:j] for i, j in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    batches[3] = batches[3] + batches[1][:5]  # sent again: duplicates change nothing
    batches.append([])  # nothing new, after the future event fell due
    for number, batch in enumerate(batches):
        if number == len(batches) - 1:
            await asyncio.sleep(max(0.0, (ahead - datetime.now(UTC)).total_seconds()) + 0.1)
            batch = [{**events[0], "event_id": "e-last", "customer_id": "a"}]
        response = await client.post(
            "/v1/events", json={"events": batch}, headers=tenant["headers"]
        )
        assert response.status_code == 202, response.text
        stored = await expected(engine, tenant["id"])
        for cid in {e["customer_id"] for e in batch}:
            profile = (
                await client.get(f"/v1/customers/{cid}/features", headers=tenant["headers"])
            ).json()
            as_of = datetime.fromisoformat(profile["as_of"])
            reference = compute_features(stored[cid], as_of)
            for name in PROFILE_FEATURE_NAMES:
                want = reference[name]
                got = profile["features"][name]
                assert got == (want if want is None else pytest.approx(want, rel=1e-9)), (
                    number,
                    cid,
                    name,
                )
    # The future-dated login counts now that it is due.
    assert compute_features(stored["a"], datetime.now(UTC))["logins_last_30d"] >= 1

    # Every profile has a stored state to continue from.
    async with create_session_factory(engine)() as session:
        states = await FeatureRepository(session).states(tenant["id"], CUSTOMERS)
        assert sorted(states) == sorted({e["customer_id"] for e in events})
    async with engine.connect() as conn:
        result = await conn.execute(
            sa.select(sa.func.count()).where(
                customer_features.c.tenant_id == tenant["id"], customer_features.c.state.is_(None)
            )
        )
        assert result.scalar() == 0


async def test_a_customer_deleted_and_seen_again_starts_from_nothing(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    first = {
        "event_id": uuid.uuid4().hex,
        "customer_id": "gone",
        "type": "order_placed",
        "occurred_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
        "properties": {"amount": 40},
    }
    assert (await client.post("/v1/events", json={"events": [first]}, headers=h)).status_code == 202
    assert (await client.delete("/v1/customers/gone", headers=h)).status_code == 204
    again = {**first, "event_id": uuid.uuid4().hex, "properties": {"amount": 5}}
    assert (await client.post("/v1/events", json={"events": [again]}, headers=h)).status_code == 202
    features = (await client.get("/v1/customers/gone/features", headers=h)).json()["features"]
    assert features["total_orders"] == 1
    assert features["total_spent"] == 5.0
