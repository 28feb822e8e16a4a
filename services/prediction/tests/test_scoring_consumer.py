"""Streaming scoring: customer.features.v1 → stored score + churn.scores.v1 (real broker, DB)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from churn_prediction.main import create_app
from churn_prediction.models import outbox, scores_table
from churn_prediction.scoring.scorer import FeatureColumns
from churn_shared.contracts import ChurnScoreComputedV1, CustomerFeaturesUpdatedV1, Topics
from churn_shared.kafka import Envelope, EventPublisher
from testkit import wait_for


def features_envelope(
    tenant_id: str,
    customer_id: str,
    features: dict[str, float | None],
    *,
    event_id: str | None = None,
    backfill: bool = False,
) -> Envelope:
    payload = CustomerFeaturesUpdatedV1(
        customer_id=customer_id, features=features, as_of=datetime.now(UTC), backfill=backfill
    )
    return Envelope.wrap(
        tenant_id=tenant_id,
        producer="test",
        payload=payload,
        key=customer_id,
        event_id=event_id,
    )


@contextlib.asynccontextmanager
async def score_events(bootstrap: str, tenant_id: str) -> AsyncIterator[list[Envelope]]:
    """Collect this tenant's envelopes from churn.scores.v1 while the block runs."""
    consumer = AIOKafkaConsumer(
        Topics.CHURN_SCORES,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    seen: list[Envelope] = []

    async def pump() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    env = Envelope.from_bytes(record.value)
                    if env.tenant_id == tenant_id:
                        seen.append(env)

    task = asyncio.create_task(pump())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def stored_scores(app: Any, tenant_id: str) -> list[Any]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(scores_table)
            .where(scores_table.c.tenant_id == tenant_id)
            .order_by(scores_table.c.id)
        )
        return list(rows.all())


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def test_feature_snapshots_are_scored_stored_and_published(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    kafka_bootstrap: str,
    tenant: str,
) -> None:
    app = create_app(
        make_settings(run_workers=True, scorer_group_id=f"scorer-{tenant}"),
        token_verifier=token_signer.verifier(),
    )
    publisher = EventPublisher(kafka_bootstrap, client_id="test-producer")
    await publisher.start()
    healthy = {"days_since_last_order": 3.0, "email_open_rate": 0.6, "logins_last_30d": 12.0}
    leaving = {
        "days_since_last_order": 210.0,
        "email_open_rate": 0.01,
        "logins_last_30d": 0.0,
        "payment_failures_last_90d": 4.0,
        "support_tickets_last_90d": 3.0,
        "orders_last_90d": 0.0,
    }
    try:
        async with in_process(app), score_events(kafka_bootstrap, tenant) as published:
            first = features_envelope(tenant, "cust-1", healthy)
            await publisher.publish(Topics.CUSTOMER_FEATURES, [first], request_id="req-scoring-1")
            await wait_for(lambda: len(published) >= 1, timeout=30)

            rows = await stored_scores(app, tenant)
            assert len(rows) == 1
            model = app.state.serving_models.for_tenant(tenant).model
            batch = model.parse(FeatureColumns.from_mappings([healthy], model.feature_names))
            expected = model.booster.predict(batch)[0]
            assert rows[0].customer_id == "cust-1"
            assert rows[0].churn_probability == pytest.approx(expected, abs=1e-9)
            assert rows[0].model_version == "default-1"
            assert len(rows[0].drivers) == 3

            event = ChurnScoreComputedV1.model_validate(published[0].payload)
            assert published[0].event_type == "ChurnScoreComputedV1"
            assert published[0].key == "cust-1"
            assert published[0].producer == "churn-prediction"
            assert event.previous_probability is None
            assert event.churn_probability == pytest.approx(expected, abs=1e-9)
            assert len(event.drivers) == 3
            assert event.backfill is False

            second = features_envelope(tenant, "cust-1", leaving, backfill=True)
            await publisher.publish(Topics.CUSTOMER_FEATURES, [second])
            await wait_for(lambda: len(published) >= 2, timeout=30)
            later = ChurnScoreComputedV1.model_validate(published[1].payload)
            assert later.previous_probability == pytest.approx(event.churn_probability, abs=1e-12)
            assert later.churn_probability > event.churn_probability
            assert later.risk_level == "high"
            assert later.backfill is True
            assert any(d.direction == "increases_risk" for d in later.drivers)
            assert len(await stored_scores(app, tenant)) == 2

            # The outbox is drained once the broker has acknowledged.
            async def outbox_empty() -> bool:
                async with app.state.engine.connect() as conn:
                    count = await conn.scalar(sa.select(sa.func.count()).select_from(outbox))
                    return count == 0

            await wait_for(outbox_empty, timeout=10)
    finally:
        await publisher.stop()


async def test_a_duplicate_envelope_is_scored_once(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    kafka_bootstrap: str,
    tenant: str,
) -> None:
    app = create_app(
        make_settings(run_workers=True, scorer_group_id=f"scorer-{tenant}"),
        token_verifier=token_signer.verifier(),
    )
    publisher = EventPublisher(kafka_bootstrap, client_id="test-producer")
    await publisher.start()
    try:
        async with in_process(app), score_events(kafka_bootstrap, tenant) as published:
            envelope = features_envelope(tenant, "dup-1", {"days_since_last_order": 40.0})
            # Twice in one batch, then once more in a later batch.
            await publisher.publish(Topics.CUSTOMER_FEATURES, [envelope, envelope])
            await wait_for(lambda: len(published) >= 1, timeout=30)
            await publisher.publish(Topics.CUSTOMER_FEATURES, [envelope])
            marker = features_envelope(tenant, "marker", {"days_since_last_order": 1.0})
            await publisher.publish(Topics.CUSTOMER_FEATURES, [marker])
            await wait_for(lambda: any(e.key == "marker" for e in published), timeout=30)
            await asyncio.sleep(0.3)
            rows = await stored_scores(app, tenant)
            assert [r.customer_id for r in rows] == ["dup-1", "marker"]
            assert [e.key for e in published] == ["dup-1", "marker"]
    finally:
        await publisher.stop()


async def test_a_micro_batch_scores_many_customers_in_order(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    kafka_bootstrap: str,
    tenant: str,
) -> None:
    app = create_app(
        make_settings(run_workers=True, scorer_group_id=f"scorer-{tenant}"),
        token_verifier=token_signer.verifier(),
    )
    publisher = EventPublisher(kafka_bootstrap, client_id="test-producer", linger_ms=20)
    await publisher.start()
    rng = np.random.default_rng(5)
    profiles = [
        {
            "days_since_last_order": float(rng.integers(0, 250)),
            "email_open_rate": float(rng.uniform(0, 0.7)),
            "logins_last_30d": float(rng.integers(0, 20)),
        }
        for _ in range(200)
    ]
    try:
        async with in_process(app), score_events(kafka_bootstrap, tenant) as published:
            envelopes = [
                features_envelope(tenant, f"c-{i % 50}", profile)
                for i, profile in enumerate(profiles)
            ]
            await publisher.publish(Topics.CUSTOMER_FEATURES, envelopes)
            await wait_for(lambda: len(published) >= 200, timeout=60)
            rows = await stored_scores(app, tenant)
            assert len(rows) == 200
            # Per customer, every score after the first carries the one before it.
            by_customer: dict[str, list[ChurnScoreComputedV1]] = {}
            for env in published:
                by_customer.setdefault(env.key or "", []).append(
                    ChurnScoreComputedV1.model_validate(env.payload)
                )
            assert len(by_customer) == 50
            for history in by_customer.values():
                assert history[0].previous_probability is None
                for before, after in itertools.pairwise(history):
                    assert after.previous_probability == before.churn_probability
    finally:
        await publisher.stop()
