"""When a tenant's champion moves, every customer's attributes are sent again
(``churn_customers.attributes``), so that a champion reading imported attributes scores the
customers imported before it: page by page, in customer id order, on the real database; and,
with the workers running, from a ``ModelPromotedV1`` on the real broker to the re-sent events
on ``customer.attributes.v1``."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.attributes import RescanPage, request_attribute_rescan, resend_attributes_page
from churn_customers.events.handlers import MODELS_CONSUMER
from churn_customers.models import customer_attribute_rescans, outbox, processed_events
from churn_customers.repository import CustomerRepository
from churn_shared.contracts import CustomerAttributesChangedV1, ModelPromotedV1
from churn_shared.db import unit_of_work, utcnow
from churn_shared.kafka import Envelope
from testkit import read_topic, wait_for

TOPIC = CustomerAttributesChangedV1.topic


async def _store(
    factory: async_sessionmaker[AsyncSession],
    tenant_id: str,
    attributes: dict[str, dict[str, Any]],
) -> None:
    async with unit_of_work(factory) as session:
        await CustomerRepository(session).upsert_attributes(tenant_id, attributes, utcnow())


async def _sent(engine: AsyncEngine, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's attribute events still in the outbox (no relay runs here), in order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(outbox.c.payload).where(outbox.c.topic == TOPIC).order_by(outbox.c.id)
        )
        envelopes = [orjson.loads(payload) for (payload,) in rows.all()]
    return [
        CustomerAttributesChangedV1.model_validate(e["payload"]).model_dump(mode="json")
        for e in envelopes
        if e["tenant_id"] == tenant_id
    ]


async def _page(factory: async_sessionmaker[AsyncSession], size: int) -> RescanPage | None:
    async with unit_of_work(factory) as session:
        return await resend_attributes_page(session, size)


async def _request(factory: async_sessionmaker[AsyncSession], tenant_id: str, version: str) -> None:
    async with unit_of_work(factory) as session:
        await request_attribute_rescan(session, tenant_id, version, utcnow())


async def _rescans(engine: AsyncEngine, tenant_id: str) -> list[tuple[Any, ...]]:
    t = customer_attribute_rescans.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(t.model_version, t.after_customer_id).where(t.tenant_id == tenant_id)
        )
        return [tuple(row) for row in rows.all()]


async def test_a_rescan_sends_every_attributed_customer_page_by_page_then_ends(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant, other = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    attributes = {f"c{i}": {"plan": f"p{i}", "seats": i} for i in range(1, 6)}
    # A customer known from events only (no attributes) is passed over; another tenant's
    # customers are not this rescan's.
    await _store(factory, tenant, {"c0-bare": {}, **attributes})
    await _store(factory, other, {"c1": {"plan": "other"}})
    await _request(factory, tenant, "v-attr")
    assert await _rescans(engine, tenant) == [("v-attr", None)]

    pages = []
    while (page := await _page(factory, 2)) is not None:
        pages.append((page.tenant_id, page.sent, page.last))
        assert len(pages) < 10, "the rescan does not end"
    # Pages of two customers by id: (c0-bare, c1), (c2, c3), (c4, c5), then an empty one.
    assert pages == [(tenant, 1, False), (tenant, 2, False), (tenant, 2, False), (tenant, 0, True)]
    assert await _rescans(engine, tenant) == []

    sent = await _sent(engine, tenant)
    assert [(e["customer_id"], e["attributes"], e["import_id"]) for e in sent] == [
        (cid, values, None) for cid, values in attributes.items()
    ]
    assert await _sent(engine, other) == []


async def test_a_newer_champion_move_starts_the_rescan_over(
    engine: AsyncEngine, factory: async_sessionmaker[AsyncSession]
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    await _store(factory, tenant, {f"c{i}": {"plan": "gold"} for i in range(1, 4)})
    await _request(factory, tenant, "v1")
    first = await _page(factory, 2)
    assert first is not None
    assert (first.sent, first.last) == (2, False)
    assert await _rescans(engine, tenant) == [("v1", "c2")]

    await _request(factory, tenant, "v2")
    assert await _rescans(engine, tenant) == [("v2", None)]
    while await _page(factory, 2) is not None:
        pass
    sent = [e["customer_id"] for e in await _sent(engine, tenant)]
    assert sent == ["c1", "c2", "c1", "c2", "c3"]


async def _publish(bootstrap: str, events: list[ModelPromotedV1]) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        ids = []
        for event in events:
            envelope = Envelope.wrap(
                tenant_id=event.tenant_id, producer="test", payload=event, key=event.tenant_id
            )
            await producer.send_and_wait(
                ModelPromotedV1.topic, envelope.to_bytes(), key=event.tenant_id.encode()
            )
            ids.append(envelope.event_id)
        return ids
    finally:
        await producer.stop()


async def test_a_champion_move_on_the_broker_sends_the_attributes_again(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
) -> None:
    stored = {"a": {"plan": "gold"}, "b": {"plan": "silver", "seats": 2}}
    for cid, values in stored.items():
        created = await client.post(
            "/v1/customers",
            json={"customer_id": cid, "attributes": values},
            headers=tenant["headers"],
        )
        assert created.status_code == 201, created.text
    bare = await client.post(
        "/v1/customers", json={"customer_id": "bare"}, headers=tenant["headers"]
    )
    assert bare.status_code == 201, bare.text
    rescanner = app.state.workers.rescanner
    before = rescanner.sent

    def move(alias: str, version: str | None) -> ModelPromotedV1:
        return ModelPromotedV1(
            tenant_id=tenant["id"], alias=alias, version=version, promoted_at=utcnow()
        )

    async def settled(ids: list[str]) -> tuple[int, int] | None:
        """Once these events are claimed (in the transaction that requests a rescan): the
        rescans still waiting for the tenant, and the customers sent since ``before``."""
        async with app.state.engine.connect() as conn:
            claimed = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(processed_events)
                .where(
                    processed_events.c.consumer == MODELS_CONSUMER,
                    processed_events.c.event_id.in_(ids),
                )
            )
            pending = await conn.scalar(
                sa.select(sa.func.count())
                .select_from(customer_attribute_rescans)
                .where(customer_attribute_rescans.c.tenant_id == tenant["id"])
            )
        return (pending, rescanner.sent - before) if claimed == len(ids) else None

    # A challenger move and a champion removed (back to the default, which reads the event
    # features) request nothing.
    ignored = await _publish(kafka_bootstrap, [move("challenger", "v-1"), move("champion", None)])
    assert await wait_for(lambda: settled(ignored), 30) == (0, 0)

    # A champion move sends each customer with attributes once more.
    moved = await _publish(kafka_bootstrap, [move("champion", "v-2")])

    async def rescanned() -> bool:
        return await settled(moved) == (0, len(stored))

    await wait_for(rescanned, 30)

    def ours(value: bytes, _: list[tuple[str, bytes]]) -> bool:
        envelope = orjson.loads(value)
        return envelope["tenant_id"] == tenant["id"]

    async def both_sent_twice() -> list[dict[str, Any]] | None:
        found = [orjson.loads(v)["payload"] for v in await read_topic(kafka_bootstrap, TOPIC, ours)]
        counts = {cid: sum(p["customer_id"] == cid for p in found) for cid in (*stored, "bare")}
        return found if counts == {"a": 2, "b": 2, "bare": 0} else None

    found = await wait_for(both_sent_twice, 30)
    for cid, values in stored.items():
        # Once when created, once again after the move: the same whole set each time.
        assert [p["attributes"] for p in found if p["customer_id"] == cid] == [values, values]
