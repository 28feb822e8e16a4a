"""Event ingest on in-memory repositories: duplicates, unknown customers, features recomputed
from every stored event, and one ``CustomerFeaturesUpdatedV1`` per affected customer in the
outbox, all in the caller's unit of work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from churn_customers.exceptions import ConcurrentIngestError, EventBatchTooLargeError
from churn_customers.schemas import EventIn
from churn_shared.contracts import CustomerFeaturesUpdatedV1, Topics

TENANT = "t-1"


def order(event_id: str, customer_id: str, amount: float = 50.0, days_ago: int = 3) -> EventIn:
    return EventIn(
        event_id=event_id,
        customer_id=customer_id,
        type="order_placed",
        occurred_at=datetime.now(UTC) - timedelta(days=days_ago),
        properties={"amount": amount},
    )


def features_published(uow) -> dict[str, CustomerFeaturesUpdatedV1]:
    """The feature updates in the outbox, by customer (the key)."""
    return {
        envelope.key: CustomerFeaturesUpdatedV1.model_validate(envelope.payload)
        for envelope in uow.session.outbox(Topics.CUSTOMER_FEATURES)
    }


def features_of(uow, customer_id: str) -> list[CustomerFeaturesUpdatedV1]:
    """Every feature update of one customer in the outbox, oldest first."""
    return [
        CustomerFeaturesUpdatedV1.model_validate(e.payload)
        for e in uow.session.outbox(Topics.CUSTOMER_FEATURES)
        if e.key == customer_id
    ]


async def test_new_events_create_customers_and_store_features(ingest, uow):
    async with uow:
        accepted = await ingest.record_events(
            TENANT, [order("e1", "c1"), order("e2", "c1", 30.0), order("e3", "c2")]
        )

    assert (accepted.accepted, accepted.duplicates) == (3, 0)
    assert set(uow.customers.rows) == {(TENANT, "c1"), (TENANT, "c2")}
    features, _ = uow.features.profiles[(TENANT, "c1")]
    assert features["total_orders"] == 2
    assert features["total_spent"] == pytest.approx(80.0)
    assert uow.commits == 1


async def test_one_features_message_per_affected_customer(ingest, uow):
    await ingest.record_events(TENANT, [order("e1", "c1"), order("e2", "c1"), order("e3", "c2")])

    published = features_published(uow)
    assert sorted(published) == ["c1", "c2"]
    assert len(uow.session.outbox()) == 2
    assert published["c1"].features == uow.features.profiles[(TENANT, "c1")][0]
    assert published["c1"].backfill is False


async def test_features_are_recomputed_from_every_stored_event(ingest, uow):
    await ingest.record_events(TENANT, [order("e1", "c1", 10.0)])
    await ingest.record_events(TENANT, [order("e2", "c1", 20.0)])

    features, _ = uow.features.profiles[(TENANT, "c1")]
    assert features["total_orders"] == 2
    assert features["total_spent"] == pytest.approx(30.0)
    assert [m.features["total_orders"] for m in features_of(uow, "c1")] == [1, 2]


async def test_repeated_and_stored_events_are_duplicates(ingest, uow):
    await ingest.record_events(TENANT, [order("e1", "c1")])
    outbox_before = len(uow.session.outbox())

    accepted = await ingest.record_events(
        TENANT, [order("e1", "c1"), order("e2", "c2"), order("e2", "c2")]
    )

    assert (accepted.accepted, accepted.duplicates) == (1, 2)
    assert [r["event_id"] for r in uow.events.rows] == ["e1", "e2"]
    assert [e.key for e in uow.session.outbox()[outbox_before:]] == ["c2"]


async def test_a_batch_of_only_duplicates_publishes_nothing(ingest, uow):
    await ingest.record_events(TENANT, [order("e1", "c1")])
    profile_before = uow.features.profiles[(TENANT, "c1")]

    accepted = await ingest.record_events(TENANT, [order("e1", "c1")])

    assert (accepted.accepted, accepted.duplicates) == (0, 1)
    assert len(uow.session.outbox()) == 1
    assert uow.features.profiles[(TENANT, "c1")] is profile_before


async def test_the_same_event_id_in_another_tenant_is_not_a_duplicate(ingest, uow):
    await ingest.record_events(TENANT, [order("e1", "c1")])

    accepted = await ingest.record_events("t-2", [order("e1", "c1")])

    assert accepted.accepted == 1
    assert {e.tenant_id for e in uow.session.outbox()} == {TENANT, "t-2"}


async def test_backfilled_events_publish_backfill_features(ingest, uow):
    await ingest.record_events(TENANT, [order("e1", "c1")], backfill=True)

    assert features_published(uow)["c1"].backfill is True


async def test_a_batch_over_the_limit_is_refused_before_anything_is_stored(ingest, uow):
    batch = [order(f"e{i}", "c1") for i in range(101)]

    with pytest.raises(EventBatchTooLargeError):
        async with uow:
            await ingest.record_events(TENANT, batch)

    assert uow.events.rows == []
    assert uow.session.outbox() == []
    assert (uow.commits, uow.rollbacks) == (0, 1)


async def test_an_event_stored_concurrently_fails_the_batch_for_a_retry(ingest, uow):
    def other_request_stored_e1() -> None:
        uow.events.rows.append({"tenant_id": TENANT, "event_id": "e1"})

    uow.events.before_insert = other_request_stored_e1

    with pytest.raises(ConcurrentIngestError):
        async with uow:
            await ingest.record_events(TENANT, [order("e1", "c1")])

    assert uow.session.outbox() == []
    assert uow.rollbacks == 1


def loyalty(event_id: str, customer_id: str, days_ago: int, **props: float) -> EventIn:
    return EventIn(
        event_id=event_id,
        customer_id=customer_id,
        type="loyalty_points_changed",
        occurred_at=datetime.now(UTC) - timedelta(days=days_ago),
        properties=dict(props),
    )


async def test_later_batches_read_no_history_unless_a_late_balance_needs_it(ingest, uow):
    """The first batch builds each customer's state from the history; later ones, even late
    and out of order, update it without reading the history, except for the one customer whose
    late loyalty balance precedes a stored delta. (An order dated before the customer's latest
    order also rebuilds, for the interval features: unit/test_incremental_features.py.)"""
    await ingest.record_events(
        TENANT,
        [order("e1", "c1", days_ago=40), loyalty("l1", "c1", 10, balance=100), order("e2", "c2")],
    )
    reads: list[list[str]] = []
    read_history = uow.events.for_customers

    async def spy(tenant_id, customer_ids):
        reads.append(sorted(customer_ids))
        return await read_history(tenant_id, customer_ids)

    uow.events.for_customers = spy
    await ingest.record_events(
        TENANT,
        [order("e3", "c1", days_ago=20), loyalty("l2", "c1", 5, delta=7), order("e4", "c2")],
    )
    assert reads == []
    assert uow.features.profiles[(TENANT, "c1")][0]["loyalty_points"] == 107
    assert uow.features.profiles[(TENANT, "c1")][0]["total_orders"] == 2

    await ingest.record_events(
        TENANT, [loyalty("l3", "c1", 7, balance=1), order("e5", "c2", days_ago=1)]
    )
    assert reads == [["c1"]]
    assert uow.features.profiles[(TENANT, "c1")][0]["loyalty_points"] == 1 + 7
    assert uow.features.profiles[(TENANT, "c2")][0]["total_orders"] == 3
