"""customer.deleted.v1 → the deleted customer's alerts (with history and deliveries) and risk
band go; nobody else's do (real broker, real database)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from churn_alerts.main import create_app
from churn_alerts.models import Delivery, RiskBand
from churn_shared.contracts import ChurnScoreComputedV1, CustomerDeletedV1, Topics
from churn_shared.db import utcnow
from churn_shared.kafka import Envelope, EventPublisher
from testkit import wait_for


def _envelope(tenant_id: str, customer_id: str, payload: Any) -> Envelope:
    return Envelope.wrap(tenant_id=tenant_id, producer="test", key=customer_id, payload=payload)


def _high_score(tenant_id: str, customer_id: str) -> Envelope:
    return _envelope(
        tenant_id,
        customer_id,
        ChurnScoreComputedV1(
            customer_id=customer_id,
            churn_probability=0.95,
            risk_level="high",
            model_version="m-test",
            scored_at=utcnow(),
        ),
    )


async def _alerts(client: Any, tenant: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get("/v1/alerts", headers=tenant["headers"])
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _count(app: Any, model: Any, **where: Any) -> int:
    table = model.__table__
    async with app.state.engine.connect() as conn:
        found = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(table)
            .where(*(table.c[k] == v for k, v in where.items()))
        )
    return int(found or 0)


async def test_a_deleted_customers_alerts_and_band_are_dropped(
    make_settings: Any,
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
    webhook_receiver: Any,
    kafka_bootstrap: str,
) -> None:
    app = create_app(make_settings(), token_verifier=token_signer.verifier())
    publisher = EventPublisher(kafka_bootstrap, client_id="alerts-test-deletions", linger_ms=0)
    await publisher.start()
    async with in_process(app) as client:
        channel = await client.post(
            "/v1/alert-channels",
            headers=tenant["headers"],
            json={"kind": "webhook", "url": webhook_receiver.url},
        )
        assert channel.status_code == 201, channel.text
        await publisher.publish(
            Topics.CHURN_SCORES,
            [_high_score(tenant["id"], "gone"), _high_score(tenant["id"], "kept")],
        )

        async def raised() -> list[dict[str, Any]] | None:
            items = await _alerts(client, tenant)
            return items if len(items) == 2 else None

        alerts = {a["customer_id"]: a["id"] for a in await wait_for(raised, 30)}

        async def delivered() -> bool:
            return await _count(app, Delivery, alert_id=alerts["gone"]) > 0

        await wait_for(delivered, 30)
        deleted = _envelope(
            tenant["id"], "gone", CustomerDeletedV1(customer_id="gone", deleted_at=utcnow())
        )
        try:
            await publisher.publish(CustomerDeletedV1.topic, [deleted])
        finally:
            await publisher.stop()

        async def dropped() -> bool:
            return [a["customer_id"] for a in await _alerts(client, tenant)] == ["kept"]

        await wait_for(dropped, 30)
        gone = await client.get(f"/v1/alerts/{alerts['gone']}", headers=tenant["headers"])
        assert gone.status_code == 404
        assert await _count(app, Delivery, alert_id=alerts["gone"]) == 0
        assert await _count(app, RiskBand, tenant_id=tenant["id"], customer_id="gone") == 0
        assert await _count(app, Delivery, alert_id=alerts["kept"]) > 0
