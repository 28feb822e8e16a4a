"""customer.deleted.v1 → the deleted customer's scores go (real broker, real database)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from churn_prediction.main import create_app
from churn_prediction.models import scores_table
from churn_shared.contracts import CustomerDeletedV1
from churn_shared.kafka import Envelope, EventPublisher
from testkit import wait_for


def score_row(tenant_id: str, customer_id: str) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "customer_id": customer_id,
        "churn_probability": 0.8,
        "risk_level": "high",
        "model_version": "default-1",
        "drivers": [],
        "scored_at": datetime.now(UTC),
    }


async def customers_with_scores(app: Any) -> set[tuple[str, str]]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(sa.select(scores_table.c.tenant_id, scores_table.c.customer_id))
        return {(t, c) for t, c in rows.all()}


async def test_a_deleted_customers_scores_are_dropped_and_no_one_elses(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, kafka_bootstrap: str
) -> None:
    tenant, other = f"t-{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:12]}"
    app = create_app(
        make_settings(run_workers=True, scorer_group_id=f"scorer-{tenant}"),
        token_verifier=token_signer.verifier(),
    )
    publisher = EventPublisher(kafka_bootstrap, client_id="test-producer")
    await publisher.start()
    try:
        async with in_process(app):
            async with app.state.engine.begin() as conn:
                await conn.execute(
                    sa.insert(scores_table),
                    [
                        score_row(tenant, "gone"),
                        score_row(tenant, "gone"),
                        score_row(tenant, "kept"),
                        score_row(other, "gone"),
                    ],
                )
            deleted = Envelope.wrap(
                tenant_id=tenant,
                producer="test",
                key="gone",
                payload=CustomerDeletedV1(customer_id="gone", deleted_at=datetime.now(UTC)),
            )
            await publisher.publish(CustomerDeletedV1.topic, [deleted, deleted])

            async def dropped() -> bool:
                return (tenant, "gone") not in await customers_with_scores(app)

            await wait_for(dropped, timeout=30)
            assert await customers_with_scores(app) == {(tenant, "kept"), (other, "gone")}
    finally:
        await publisher.stop()
