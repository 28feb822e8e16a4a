"""Two replicas of the customers worker in one consumer group, on the real broker and one
database: they share the partitions of ``customer.events.v1``, both process messages, and each
customer's events (keyed by customer id) are applied in the order they were produced."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer

from churn_customers.config import Settings
from churn_customers.models import customer_features, events
from churn_customers.worker import RUNTIME, CustomerWorkers
from churn_shared.contracts import CustomerEventReceivedV1
from churn_shared.kafka import Envelope
from churn_shared.runtime import ProcessState
from testkit import wait_for

CUSTOMERS = 30
BALANCES = 6


async def test_two_replicas_share_the_partitions_and_keep_each_customers_order(
    make_settings: Callable[..., Settings], kafka_bootstrap: str, known_tenants: Any
) -> None:
    # A group of their own, so the two replicas are its only members.
    settings = make_settings(consumer_group=f"scale-out-{uuid.uuid4().hex[:8]}")
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    known_tenants.ids.add(tenant_id)
    async with AsyncExitStack() as stack:
        replicas: list[CustomerWorkers] = []
        states = []
        for _ in range(2):
            state = ProcessState(settings)
            state.tenants = known_tenants
            await stack.enter_async_context(RUNTIME.open(state, run_workers=True))
            assert isinstance(state.workers, CustomerWorkers)
            replicas.append(state.workers)
            states.append(state)
        consumers = [r.events_consumer for r in replicas]
        topic = CustomerEventReceivedV1.topic

        def shared() -> bool:
            held = [c.assignment() for c in consumers]
            return all(held) and not held[0] & held[1] and len(held[0] | held[1]) >= 2

        await wait_for(shared, 60)
        partitions = [{p for t, p in c.assignment() if t == topic} for c in consumers]

        # Each customer: BALANCES loyalty balances at one instant, one message each, in order.
        # The stored (and so the applied) order decides the points: the last one produced wins
        # only if the customer's messages were consumed in order by one replica.
        at = datetime.now(UTC) - timedelta(days=1)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
        await producer.start()
        try:
            for step in range(1, BALANCES + 1):
                for n in range(CUSTOMERS):
                    cid = f"c-{n:03d}"
                    envelope = Envelope.wrap(
                        tenant_id=tenant_id,
                        producer="test",
                        key=cid,
                        payload=CustomerEventReceivedV1(
                            event_id=f"{cid}-{step}",
                            customer_id=cid,
                            type="loyalty_points_changed",
                            occurred_at=at,
                            properties={"balance": 100 * n + step},
                        ),
                    )
                    await producer.send(topic, envelope.to_bytes(), key=cid.encode())
            await producer.flush()
        finally:
            await producer.stop()

        engine = states[0].engine

        async def all_stored() -> bool:
            async with engine.connect() as conn:
                result = await conn.execute(
                    sa.select(sa.func.count()).where(events.c.tenant_id == tenant_id)
                )
                return int(result.scalar_one()) == CUSTOMERS * BALANCES

        await wait_for(all_stored, 60)
        handled = [c.handled for c in consumers]
        async with engine.connect() as conn:
            result = await conn.execute(
                sa.select(customer_features.c.customer_id, customer_features.c.features).where(
                    customer_features.c.tenant_id == tenant_id
                )
            )
            points = {cid: features["loyalty_points"] for cid, features in result}

    assert all(partitions), partitions
    assert not partitions[0] & partitions[1], partitions
    assert all(count > 0 for count in handled), handled
    assert sum(handled) >= CUSTOMERS * BALANCES
    # In order for every customer: the last balance produced is the one that holds.
    assert points == {f"c-{n:03d}": 100 * n + BALANCES for n in range(CUSTOMERS)}
