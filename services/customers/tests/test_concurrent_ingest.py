"""Concurrent ingest over shared customers, against the score consumer's writes, never 5xx.

On MariaDB this reproduced InnoDB deadlocks: six clients posting 10-event batches over 100
shared customers got 68 of 240 requests answered 500. Ingest locked its customers in id order,
the score consumer updated them in ``scored_at`` order, and ``mark_seen``'s ``IN (...)`` update
could scan (and, under repeatable read, lock) other transactions' customers. Now every writer
locks by unique key in customer-id order, and a transaction that still loses a lock conflict
is run again by the error boundary.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from churn_customers.models import events
from churn_customers.service import EventIngestService, TenantScore
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import is_transient, unit_of_work

CLIENTS = 6
BATCHES_PER_CLIENT = 8
EVENTS_PER_BATCH = 10
CUSTOMERS = 100


def _batch(customer_ids: list[str], start: datetime) -> list[dict[str, Any]]:
    chosen = random.sample(customer_ids, EVENTS_PER_BATCH)
    return [
        {
            "event_id": uuid.uuid4().hex,
            "customer_id": cid,
            "type": random.choice(["login", "order_placed", "email_opened"]),
            "occurred_at": (start + timedelta(minutes=i)).isoformat(),
            "properties": {"amount": 10.0},
        }
        for i, cid in enumerate(chosen)
    ]


async def test_concurrent_batches_over_shared_customers_never_answer_5xx(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    customer_ids = [f"c-{i:03d}" for i in range(CUSTOMERS)]
    start = datetime(2026, 10, 1, tzinfo=UTC)
    statuses: list[int] = []
    sent = 0

    async def ingest(n: int) -> None:
        nonlocal sent
        for b in range(BATCHES_PER_CLIENT):
            batch = _batch(customer_ids, start + timedelta(hours=n * 100 + b))
            sent += len(batch)
            response = await client.post(
                "/v1/events", json={"events": batch}, headers=tenant["headers"]
            )
            statuses.append(response.status_code)

    async def score_updates() -> None:
        """What the score consumer does, in its own transactions, scores in time order."""
        for round_ in range(BATCHES_PER_CLIENT * 2):
            now = datetime.now(UTC)
            scores = [
                TenantScore(
                    tenant["id"],
                    ChurnScoreComputedV1(
                        customer_id=cid,
                        churn_probability=random.random(),
                        risk_level="low",
                        model_version="test",
                        scored_at=now - timedelta(seconds=random.random() * 60),
                        drivers=[],
                    ),
                )
                for cid in random.sample(customer_ids, 50)
            ]
            # As the score consumer does: a batch that loses a lock conflict is retried.
            for attempt in range(5):
                try:
                    async with unit_of_work(app.state.session_factory) as session:
                        await EventIngestService(session).record_scores(scores)
                    break
                except DBAPIError as exc:
                    if not is_transient(exc) or attempt == 4:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))
            await asyncio.sleep(0.01 * (round_ % 3))

    # Customers exist before the race, as they do for a tenant with history.
    await client.post(
        "/v1/events",
        json={
            "events": [
                {
                    "event_id": uuid.uuid4().hex,
                    "customer_id": cid,
                    "type": "login",
                    "occurred_at": start.isoformat(),
                }
                for cid in customer_ids
            ]
        },
        headers=tenant["headers"],
    )
    await asyncio.gather(*(ingest(n) for n in range(CLIENTS)), score_updates())

    assert [s for s in statuses if s >= 500] == []
    assert all(s == 202 for s in statuses), statuses
    async with app.state.engine.connect() as conn:
        stored = await conn.scalar(
            sa.select(sa.func.count()).select_from(events).where(events.c.tenant_id == tenant["id"])
        )
    assert stored == sent + CUSTOMERS
