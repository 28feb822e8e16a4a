"""The generic consumer handler against a real database: parse, claim, one transaction, one call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from churn_shared.contracts import ChurnAlertRaisedV1, ChurnScoreComputedV1
from churn_shared.db import create_engine, create_session_factory
from churn_shared.kafka import Envelope, Received, TransactionalHandler, processed_events_table
from churn_shared.kafka.consumer import Delivery

NOW = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def service_name() -> str:
    return "alerts"


@pytest.fixture
async def database(empty_database_url):
    metadata = sa.MetaData()
    processed = processed_events_table(metadata)
    applied = sa.Table(
        "applied_scores",
        metadata,
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
    )
    engine = create_engine(empty_database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    yield engine, processed, applied
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await engine.dispose()


class Service:
    """A fake service call that writes what it is given, so a rollback undoes it."""

    def __init__(self, table: sa.Table, *, fail: bool = False) -> None:
        self.table = table
        self.fail = fail
        self.calls: list[list[Received[ChurnScoreComputedV1]]] = []

    async def __call__(self, session, received: list[Received[ChurnScoreComputedV1]]) -> int:
        self.calls.append(received)
        conn = await session.connection()
        await conn.execute(
            sa.insert(self.table),
            [{"event_id": r.event_id, "customer_id": r.payload.customer_id} for r in received],
        )
        if self.fail:
            raise RuntimeError("service failed after writing")
        return len(received)


def score(customer_id: str = "c1", event_id: str | None = None, **payload) -> Delivery:
    envelope = Envelope.wrap(
        tenant_id="t1",
        producer="test",
        key=customer_id,
        event_id=event_id,
        payload=ChurnScoreComputedV1(
            customer_id=customer_id,
            churn_probability=0.8,
            risk_level="high",
            model_version="m1",
            scored_at=NOW,
            **payload,
        ),
    )
    return Delivery(envelope, ChurnScoreComputedV1.topic, 0, 0, f"req-{customer_id}")


def handler(engine, processed, service, woken: list[int] | None = None, **options):
    return TransactionalHandler(
        name="test-scores",
        contract=ChurnScoreComputedV1,
        session_factory=create_session_factory(engine),
        processed_events=options.pop("processed_events", processed),
        apply=service,
        on_committed=woken.append if woken is not None else None,
        **options,
    )


async def rows(engine, table: sa.Table) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(sa.select(table.c.event_id))).scalars())


async def test_a_batch_is_parsed_into_its_contract_and_applied_in_one_call(database):
    engine, processed, applied = database
    service, woken = Service(applied), []
    consume = handler(engine, processed, service, woken)
    batch = [score("c1"), score("c2")]

    await consume(batch)

    [call] = service.calls
    assert [r.payload.customer_id for r in call] == ["c1", "c2"]
    assert all(isinstance(r.payload, ChurnScoreComputedV1) for r in call)
    assert [r.request_id for r in call] == ["req-c1", "req-c2"]
    assert call[0].tenant_id == "t1"
    assert woken == [2]
    assert await rows(engine, applied) == sorted(d.envelope.event_id for d in batch)
    assert await rows(engine, processed) == sorted(d.envelope.event_id for d in batch)


async def test_the_same_envelope_twice_is_applied_once(database):
    engine, processed, applied = database
    service, woken = Service(applied), []
    consume = handler(engine, processed, service, woken)
    delivery = score("c1")

    await consume([delivery])
    await consume([delivery])

    assert len(service.calls) == 1
    assert woken == [1]
    assert await rows(engine, applied) == [delivery.envelope.event_id]


async def test_a_repeat_inside_one_batch_is_applied_once(database):
    engine, processed, applied = database
    service = Service(applied)
    delivery = score("c1")

    await handler(engine, processed, service)([delivery, score("c2"), delivery])

    assert [r.payload.customer_id for r in service.calls[0]] == ["c1", "c2"]


async def test_other_event_types_are_left_alone(database):
    engine, processed, applied = database
    service, woken = Service(applied), []
    alert = Envelope.wrap(
        tenant_id="t1",
        producer="test",
        payload=ChurnAlertRaisedV1(
            alert_id="a1",
            customer_id="c1",
            kind="high_risk",
            churn_probability=0.9,
            risk_level="high",
            model_version="m1",
            created_at=NOW,
        ),
    )
    unknown = Envelope(event_type="SomethingElseV1", tenant_id="t1", producer="p", payload={})
    others = [Delivery(e, "churn.scores.v1", 0, 0, None) for e in (alert, unknown)]

    await handler(engine, processed, service, woken)(others)

    assert service.calls == []
    assert woken == []
    assert await rows(engine, processed) == []


async def test_an_invalid_payload_raises_and_claims_nothing(database):
    engine, processed, applied = database
    service = Service(applied)
    broken = Envelope(
        event_type=ChurnScoreComputedV1.event_type,
        tenant_id="t1",
        producer="p",
        payload={"customer_id": "c1"},
    )

    with pytest.raises(ValidationError):
        await handler(engine, processed, service)(
            [score("c2"), Delivery(broken, "churn.scores.v1", 0, 1, None)]
        )

    assert service.calls == []
    assert await rows(engine, processed) == []


async def test_a_failing_service_call_rolls_back_the_claims_so_a_retry_applies(database):
    engine, processed, applied = database
    failing, woken = Service(applied, fail=True), []
    delivery = score("c1")

    with pytest.raises(RuntimeError):
        await handler(engine, processed, failing, woken)([delivery])
    assert woken == []
    assert await rows(engine, processed) == []
    assert await rows(engine, applied) == []

    service = Service(applied)
    await handler(engine, processed, service, woken)([delivery])
    assert len(service.calls) == 1
    assert woken == [1]
    assert await rows(engine, applied) == [delivery.envelope.event_id]


async def test_without_a_processed_events_table_nothing_is_claimed(database):
    engine, processed, _ = database
    calls: list[int] = []

    async def reload(session, received) -> None:
        calls.append(len(received))

    consume = handler(engine, None, reload, processed_events=None)
    delivery = score("c1")
    await consume([delivery])
    await consume([delivery])

    assert calls == [1, 1]
    assert await rows(engine, processed) == []


async def test_claims_are_kept_per_handler_name(database):
    engine, processed, applied = database
    delivery = score("c1")
    first, second = Service(applied), []

    async def other(session, received) -> None:
        second.append(len(received))

    await handler(engine, processed, first)([delivery])
    await TransactionalHandler(
        name="another-consumer",
        contract=ChurnScoreComputedV1,
        session_factory=create_session_factory(engine),
        processed_events=processed,
        apply=other,
    )([delivery])

    assert len(first.calls) == 1
    assert second == [1]
