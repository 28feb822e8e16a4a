"""The score reconciler re-sends the profiles no score is as new as: once per grace period (then
less and less often), never a scored or an in-flight one, and in bounded batches.

The outbox relay deletes a row once the broker acknowledged it; an embedded, in-memory broker
that restarts then loses what it held, and those customers' latest features were never scored
(8 of 200 after a kill -9 of ``churn up``, 51 of 100 after a SIGTERM). These tests drive the
service method and the worker step against the database; ``test_broker_loss.py`` runs the
fault itself against real brokers.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.models import customer_features, outbox
from churn_customers.schemas import EventIn
from churn_customers.service import EventIngestService, TenantScore, republish_delay
from churn_customers.worker import ScoreReconciler
from churn_shared.contracts import ChurnScoreComputedV1, CustomerFeaturesUpdatedV1, Topics
from churn_shared.db import unit_of_work
from churn_shared.kafka import Envelope

GRACE = timedelta(seconds=120)
BACKOFF = timedelta(hours=1)


def _tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def _ingest(
    factory: async_sessionmaker[AsyncSession],
    tenant_id: str,
    customer_ids: list[str],
    *,
    backfill: bool = False,
) -> None:
    batch = [
        EventIn(
            event_id=uuid.uuid4().hex,
            customer_id=cid,
            type="order_placed",
            occurred_at=datetime.now(UTC) - timedelta(days=3),
            properties={"amount": 25.0},
        )
        for cid in customer_ids
    ]
    async with unit_of_work(factory) as session:
        await EventIngestService(session).record_events(tenant_id, batch, backfill=backfill)


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


async def _profiles(engine: AsyncEngine, tenant_id: str) -> dict[str, Any]:
    """``customer_id → (features, as_of)`` of the tenant's stored profiles."""
    f = customer_features.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(f.customer_id, f.features, f.as_of).where(f.tenant_id == tenant_id)
        )
        return {cid: (features, as_of) for cid, features, as_of in rows}


async def _drain_outbox(engine: AsyncEngine) -> list[Envelope]:
    """The features envelopes waiting in the outbox (removed, as the relay would)."""
    async with engine.begin() as conn:
        rows = (
            await conn.execute(
                sa.select(outbox.c.payload)
                .where(outbox.c.topic == Topics.CUSTOMER_FEATURES)
                .order_by(outbox.c.id)
            )
        ).all()
        await conn.execute(sa.delete(outbox))
    return [Envelope.from_bytes(row.payload.encode()) for row in rows]


async def _republish(
    factory: async_sessionmaker[AsyncSession],
    now: datetime,
    *,
    limit: int = 500,
    after: tuple[str, str] | None = None,
) -> Any:
    async with unit_of_work(factory) as session:
        return await EventIngestService(session).republish_unscored(
            grace=GRACE, max_backoff=BACKOFF, limit=limit, after=after, now=now
        )


def _sent_to(envelopes: list[Envelope], tenant_id: str) -> list[str]:
    return sorted(e.key or "" for e in envelopes if e.tenant_id == tenant_id)


async def test_unscored_profiles_are_resent_as_stored_once_per_grace_period(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = _tenant()
    await _ingest(factory, tenant, ["never", "later", "earlier"])
    stored = await _profiles(engine, tenant)
    as_of = stored["never"][1]
    await _score(factory, tenant, "later", as_of + timedelta(seconds=1))  # scored these features
    await _score(factory, tenant, "earlier", as_of - timedelta(hours=1))  # older features only
    await _drain_outbox(engine)

    # Still within the grace period: the original message may be on its way.
    assert (await _republish(factory, as_of + GRACE - timedelta(seconds=1))).republished == 0

    first = as_of + GRACE + timedelta(seconds=1)
    batch = await _republish(factory, first)
    assert batch.republished == 2
    assert batch.next_after is None
    sent = await _drain_outbox(engine)
    assert _sent_to(sent, tenant) == ["earlier", "never"]
    for envelope in sent:
        assert envelope.event_type == "CustomerFeaturesUpdatedV1"
        payload = CustomerFeaturesUpdatedV1.model_validate(envelope.payload)
        assert payload.customer_id == envelope.key
        assert payload.features == stored[payload.customer_id][0]  # re-sent, not recomputed
        assert payload.as_of == stored[payload.customer_id][1]
        assert payload.backfill is False
    assert await _profiles(engine, tenant) == stored  # the profiles themselves are untouched

    # Not again within the grace period, though still unscored ...
    assert (await _republish(factory, first + GRACE - timedelta(seconds=1))).republished == 0
    assert await _drain_outbox(engine) == []
    # ... but once it has passed.
    second = first + GRACE + timedelta(seconds=1)
    assert (await _republish(factory, second)).republished == 2
    assert _sent_to(await _drain_outbox(engine), tenant) == ["earlier", "never"]

    # Once scored, a profile is left alone for good.
    await _score(factory, tenant, "never", second)
    await _score(factory, tenant, "earlier", second)
    assert (await _republish(factory, second + timedelta(days=1))).republished == 0


async def test_an_unscored_profile_is_resent_less_and_less_often(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = _tenant()
    await _ingest(factory, tenant, ["down"])
    as_of = (await _profiles(engine, tenant))["down"][1]
    await _drain_outbox(engine)

    # The prediction service is down for a day: re-sent after about 1, 2, 4 … grace periods.
    sends: list[datetime] = []
    now = as_of
    while now < as_of + timedelta(days=1):
        now += timedelta(seconds=60)  # the default interval
        if (await _republish(factory, now)).republished:
            sends.append(now)
    await _drain_outbox(engine)

    assert sends[0] <= as_of + GRACE + timedelta(seconds=60)
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    assert all(later >= earlier for earlier, later in itertools.pairwise(gaps))
    assert max(gaps) <= BACKOFF + timedelta(seconds=60)
    # Every 2 minutes would be 720 sends; with the backoff it is the ~24 hourly ones and a few.
    assert len(sends) < 35


def test_the_backoff_is_the_profile_age_between_the_grace_period_and_the_cap() -> None:
    assert republish_delay(timedelta(seconds=30), GRACE, BACKOFF) == GRACE
    assert republish_delay(timedelta(minutes=10), GRACE, BACKOFF) == timedelta(minutes=10)
    assert republish_delay(timedelta(days=3), GRACE, BACKOFF) == BACKOFF
    # A cap below the grace period cannot make it re-send more often than the grace period.
    assert republish_delay(timedelta(days=3), GRACE, timedelta(seconds=1)) == GRACE


async def test_new_features_restart_the_backoff(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = _tenant()
    await _ingest(factory, tenant, ["c"])
    as_of = (await _profiles(engine, tenant))["c"][1]
    late = as_of + timedelta(minutes=30)  # re-sent late: not again for 30 minutes
    assert (await _republish(factory, late)).republished == 1
    assert (await _republish(factory, late + timedelta(minutes=10))).republished == 0

    await _ingest(factory, tenant, ["c"])  # new features, whose message is lost again
    new_as_of = (await _profiles(engine, tenant))["c"][1]
    await _drain_outbox(engine)

    batch = await _republish(factory, max(late, new_as_of) + GRACE + timedelta(seconds=1))
    assert batch.republished == 1
    sent = await _drain_outbox(engine)
    assert CustomerFeaturesUpdatedV1.model_validate(sent[0].payload).as_of == new_as_of


async def test_a_backfilled_profile_is_resent_as_a_live_update(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = _tenant()
    await _ingest(factory, tenant, ["hist"], backfill=True)
    (original,) = await _drain_outbox(engine)
    assert original.payload["backfill"] is True
    as_of = (await _profiles(engine, tenant))["hist"][1]

    assert (await _republish(factory, as_of + GRACE * 2)).republished == 1
    (resent,) = await _drain_outbox(engine)
    assert resent.payload["backfill"] is False


async def test_batches_are_bounded_and_walk_every_profile_in_key_order(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenants = sorted([_tenant(), _tenant()])
    await _ingest(factory, tenants[0], [f"c{i}" for i in range(4)])
    await _ingest(factory, tenants[1], [f"c{i}" for i in range(3)])
    await _score(factory, tenants[0], "c1", datetime.now(UTC) + timedelta(seconds=5))
    await _drain_outbox(engine)
    now = datetime.now(UTC) + GRACE * 2

    batches: list[list[tuple[str, str]]] = []
    after = None
    while True:
        batch = await _republish(factory, now, limit=2, after=after)
        batches.append([(e.tenant_id, e.key or "") for e in await _drain_outbox(engine)])
        assert batch.republished == len(batches[-1]) <= 2
        if batch.next_after is None:
            break
        after = batch.next_after

    sent = [key for keys in batches for key in keys if key[0] in tenants]
    expected = [(tenants[0], c) for c in ("c0", "c2", "c3")] + [
        (tenants[1], c) for c in ("c0", "c1", "c2")
    ]
    assert sent == expected  # each once, in (tenant, customer) order; the scored one skipped


async def test_the_worker_step_runs_batch_after_batch_and_wakes_the_relay(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = _tenant()
    await _ingest(factory, tenant, [f"c{i}" for i in range(7)])
    await _drain_outbox(engine)
    woken: list[int] = []
    reconciler = ScoreReconciler(
        factory,
        interval_seconds=0,
        grace=timedelta(microseconds=1),
        max_backoff=BACKOFF,
        batch_size=3,
        notify=lambda: woken.append(1),
    )

    started = datetime.now(UTC)
    assert await reconciler.run_once() == 7  # three transactions: 3, 3 and 1
    assert len(woken) == 3
    assert reconciler.republished == 7
    assert _sent_to(await _drain_outbox(engine), tenant) == [f"c{i}" for i in range(7)]
    f = customer_features.c
    async with engine.connect() as conn:
        deferred = await conn.execute(sa.select(f.republish_after).where(f.tenant_id == tenant))
        assert all(until > started for (until,) in deferred)


async def test_a_profile_whose_customer_is_gone_is_not_resent(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = _tenant()
    await _ingest(factory, tenant, ["ghost"])
    as_of = (await _profiles(engine, tenant))["ghost"][1]
    async with engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM customers WHERE customer_id = 'ghost'"))
    await _drain_outbox(engine)

    assert (await _republish(factory, as_of + GRACE * 2)).republished == 0
