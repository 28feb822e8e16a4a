"""Two replicas of the prediction worker in one scorer group, on the real broker and one
database: they share the partitions of ``customer.features.v1``, both score, and each
customer's snapshots (keyed by customer id) are scored in the order they were produced."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from churn_prediction.main import create_app
from churn_prediction.models import scores_table
from churn_prediction.scoring.scorer import FeatureColumns
from churn_shared.contracts import CustomerFeaturesUpdatedV1, Topics
from churn_shared.kafka import Envelope, EventPublisher
from testkit import wait_for

CUSTOMERS = 40
SNAPSHOTS = 5


def features_envelope(tenant_id: str, customer_id: str, features: dict[str, float]) -> Envelope:
    payload = CustomerFeaturesUpdatedV1(
        customer_id=customer_id, features=features, as_of=datetime.now(UTC)
    )
    return Envelope.wrap(tenant_id=tenant_id, producer="test", payload=payload, key=customer_id)


async def test_two_replicas_share_the_partitions_and_score_each_customer_in_order(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    kafka_bootstrap: str,
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    settings = make_settings(run_workers=True, scorer_group_id=f"scale-out-{tenant}")
    apps = [create_app(settings, token_verifier=token_signer.verifier()) for _ in range(2)]
    rng = np.random.default_rng(8)
    # Snapshot k of customer n, produced in k order; the probabilities tell them apart.
    profiles = {
        (n, k): {
            "days_since_last_order": float(rng.integers(0, 300)),
            "email_open_rate": float(rng.uniform(0, 0.7)),
            "logins_last_30d": float(rng.integers(0, 25)),
            "payment_failures_last_90d": float(rng.integers(0, 4)),
        }
        for n in range(CUSTOMERS)
        for k in range(SNAPSHOTS)
    }
    publisher = EventPublisher(kafka_bootstrap, client_id="test-producer", linger_ms=5)
    await publisher.start()
    try:
        async with AsyncExitStack() as stack:
            for app in apps:
                await stack.enter_async_context(in_process(app))
            consumers = [app.state.workers.consumer for app in apps]

            def shared() -> bool:
                held = [c.assignment() for c in consumers]
                return all(held) and not held[0] & held[1]

            await wait_for(shared, 60)
            partitions = [c.assignment() for c in consumers]
            for k in range(SNAPSHOTS):
                await publisher.publish(
                    Topics.CUSTOMER_FEATURES,
                    [
                        features_envelope(tenant, f"c-{n:03d}", profiles[(n, k)])
                        for n in range(CUSTOMERS)
                    ],
                )

            async def all_scored() -> bool:
                async with apps[0].state.engine.connect() as conn:
                    count = await conn.scalar(
                        sa.select(sa.func.count()).where(scores_table.c.tenant_id == tenant)
                    )
                    return count == CUSTOMERS * SNAPSHOTS

            await wait_for(all_scored, 60)
            handled = [c.handled for c in consumers]
            model = apps[0].state.serving_models.for_tenant(tenant).model
            async with apps[0].state.engine.connect() as conn:
                rows = (
                    await conn.execute(
                        sa.select(scores_table.c.customer_id, scores_table.c.churn_probability)
                        .where(scores_table.c.tenant_id == tenant)
                        .order_by(scores_table.c.id)
                    )
                ).all()
    finally:
        await publisher.stop()

    assert all(partitions), partitions
    assert not partitions[0] & partitions[1], partitions
    assert all(count > 0 for count in handled), handled
    keys = [(n, k) for n in range(CUSTOMERS) for k in range(SNAPSHOTS)]
    columns = FeatureColumns.from_mappings([profiles[key] for key in keys], model.feature_names)
    expected = dict(zip(keys, model.booster.predict(model.parse(columns)), strict=True))
    scored: dict[str, list[float]] = {}
    for customer_id, probability in rows:
        scored.setdefault(customer_id, []).append(probability)
    for n in range(CUSTOMERS):
        in_order = [expected[(n, k)] for k in range(SNAPSHOTS)]
        assert scored[f"c-{n:03d}"] == pytest.approx(in_order, abs=1e-9), n
