"""The score history keeps ``score_history_retention_days`` of scores: older ones are deleted in
batches by the worker's pruner, except each customer's latest score, whatever its age."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.models import customer_scores, customers
from churn_customers.schemas import EventIn
from churn_customers.service import EventIngestService, TenantScore
from churn_customers.worker import ScoreHistoryPruner
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work


async def _customers(
    factory: async_sessionmaker[AsyncSession], tenant_id: str, ids: list[str]
) -> None:
    batch = [
        EventIn(
            event_id=uuid.uuid4().hex,
            customer_id=cid,
            type="login",
            occurred_at=datetime.now(UTC) - timedelta(days=1),
        )
        for cid in ids
    ]
    async with unit_of_work(factory) as session:
        await EventIngestService(session).record_events(tenant_id, batch)


async def _score(
    factory: async_sessionmaker[AsyncSession], tenant_id: str, customer_id: str, at: datetime
) -> None:
    score = ChurnScoreComputedV1(
        customer_id=customer_id,
        churn_probability=0.3,
        risk_level="low",
        model_version="m-test",
        scored_at=at,
    )
    async with unit_of_work(factory) as session:
        await EventIngestService(session).record_scores([TenantScore(tenant_id, score)])


async def _history(engine: AsyncEngine, tenant_id: str) -> dict[str, list[int]]:
    """``customer_id → ages in days`` of the scores stored, oldest first."""
    s = customer_scores.c
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(s.customer_id, s.scored_at)
            .where(s.tenant_id == tenant_id)
            .order_by(s.customer_id, s.scored_at)
        )
        out: dict[str, list[int]] = {}
        for cid, at in rows:
            at = at if at.tzinfo else at.replace(tzinfo=UTC)
            out.setdefault(cid, []).append(round((now - at) / timedelta(days=1)))
        return out


async def test_old_scores_are_pruned_in_batches_but_every_latest_score_stays(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    await _customers(factory, tenant, ["active", "quiet"])
    for cid, ages in {"active": [500, 450, 10], "quiet": [500, 420]}.items():
        for age in ages:
            await _score(factory, tenant, cid, now - timedelta(days=age))
    assert await _history(engine, tenant) == {"active": [500, 450, 10], "quiet": [500, 420]}

    pruner = ScoreHistoryPruner(
        factory, interval_seconds=0, retention=timedelta(days=400), batch_size=1
    )
    # One score per transaction: the run goes on until a batch comes back short.
    assert await pruner.run_once(now) == 3
    # "quiet" was last scored 420 days ago: that score is its latest, and stays.
    assert await _history(engine, tenant) == {"active": [10], "quiet": [420]}
    c = customers.c
    async with engine.connect() as conn:
        latest = dict(
            (
                await conn.execute(
                    sa.select(c.customer_id, c.risk_level).where(c.tenant_id == tenant)
                )
            ).all()
        )
    assert latest == {"active": "low", "quiet": "low"}
    assert await pruner.run_once(now) == 0
    assert pruner.pruned == 3
