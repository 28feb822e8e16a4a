"""The outbox relay and the batch consumer against a real broker and a real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import BaseModel

from churn_shared.db import create_engine, create_session_factory, unit_of_work
from churn_shared.kafka import (
    BatchConsumer,
    Envelope,
    EventPublisher,
    OutboxRelay,
    claim_event_ids,
    enqueue,
    ensure_topics,
    outbox_table,
    processed_events_table,
)
from churn_shared.kafka.consumer import Delivery
from churn_shared.logging import request_id_var
from testkit import wait_for


class Ping(BaseModel):
    n: int


@pytest.fixture
def service_name() -> str:
    return "customers"


@pytest.fixture
async def tables(empty_database_url):
    metadata = sa.MetaData()
    outbox = outbox_table(metadata)
    processed = processed_events_table(metadata)
    engine = create_engine(empty_database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.run_sync(metadata.create_all)
    yield engine, outbox, processed
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await engine.dispose()


def _topic() -> str:
    return f"test.{uuid.uuid4().hex[:8]}.v1"


def _envelope(n: int, tenant: str = "t1") -> Envelope:
    return Envelope.wrap(
        event_type="Ping", tenant_id=tenant, producer="test", payload=Ping(n=n), key=f"c{n % 3}"
    )


async def _consume(bootstrap: str, topic: str, count: int, timeout: float = 15.0):
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=uuid.uuid4().hex,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    records = []
    try:
        async with asyncio.timeout(timeout):
            while len(records) < count:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)
    finally:
        await consumer.stop()
    return records


def test_envelope_round_trips_and_rejects_garbage():
    env = _envelope(1)
    assert Envelope.from_bytes(env.to_bytes()) == env
    from churn_shared.kafka import EnvelopeError

    for raw in (b"not json", b"{}", b'{"event_type": "x"}', None):
        with pytest.raises(EnvelopeError):
            Envelope.from_bytes(raw)


async def test_outbox_rows_are_published_with_request_id_and_deleted(kafka_bootstrap, tables):
    engine, outbox, _ = tables
    topic = _topic()
    await ensure_topics(kafka_bootstrap, [topic], 1)
    publisher = EventPublisher(kafka_bootstrap, client_id="test")
    await publisher.start()
    factory = create_session_factory(engine)
    token = request_id_var.set("req-abcdef123")
    try:
        async with unit_of_work(factory) as session:
            await enqueue(session, outbox, topic, [_envelope(i) for i in range(5)])
    finally:
        request_id_var.reset(token)
    relay = OutboxRelay(engine, outbox, publisher)
    assert await relay.relay_once() == 5
    records = await _consume(kafka_bootstrap, topic, 5)
    assert sorted(Envelope.from_bytes(r.value).payload["n"] for r in records) == [0, 1, 2, 3, 4]
    assert all(dict(r.headers)["x-request-id"] == b"req-abcdef123" for r in records)
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar() == 0
    await publisher.stop()


async def test_rolled_back_transaction_publishes_nothing(tables):
    engine, outbox, _ = tables
    factory = create_session_factory(engine)

    async def fail_after_enqueue() -> None:
        async with unit_of_work(factory) as session:
            await enqueue(session, outbox, "x.v1", [_envelope(1)])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await fail_after_enqueue()
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar() == 0


async def test_claim_event_ids_is_idempotent(tables):
    engine, _, processed = tables
    factory = create_session_factory(engine)
    async with unit_of_work(factory) as session:
        assert await claim_event_ids(session, processed, "c", ["a", "b", "a"]) == {"a", "b"}
    async with unit_of_work(factory) as session:
        assert await claim_event_ids(session, processed, "c", ["b", "c"]) == {"c"}
        assert await claim_event_ids(session, processed, "other", ["b"]) == {"b"}


async def test_pruner_deletes_only_records_past_retention_in_batches(tables):
    from datetime import timedelta

    from churn_shared.db import utcnow
    from churn_shared.kafka import ProcessedEventsPruner

    engine, _, processed = tables
    now = utcnow()
    old = [f"old-{i}" for i in range(7)]
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(processed),
            [
                {"consumer": c, "event_id": e, "processed_at": now - timedelta(days=8)}
                for c in ("scores", "events")
                for e in old
            ]
            + [{"consumer": "scores", "event_id": "recent", "processed_at": now}],
        )
    pruner = ProcessedEventsPruner(
        engine, processed, retention=timedelta(days=7), interval_seconds=0, batch_size=3
    )
    assert await pruner.prune_once(now) == 14
    async with engine.connect() as conn:
        left = (await conn.execute(sa.select(processed.c.event_id))).scalars().all()
    assert left == ["recent"]
    assert await pruner.prune_once(now) == 0
    # A recent id is still a duplicate after pruning; a pruned one would count as new.
    async with unit_of_work(create_session_factory(engine)) as session:
        assert await claim_event_ids(session, processed, "scores", ["recent"]) == set()


async def test_consumer_dead_letters_garbage_and_poison_and_keeps_going(kafka_bootstrap):
    topic = _topic()
    await ensure_topics(kafka_bootstrap, [topic], 1)
    seen: list[int] = []

    async def handler(deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if d.envelope.payload["n"] == 13:
                raise ValueError("unlucky")
        seen.extend(d.envelope.payload["n"] for d in deliveries)

    dlq = EventPublisher(kafka_bootstrap, client_id="dlq")
    await dlq.start()
    consumer = BatchConsumer(
        topics=[topic],
        group_id=uuid.uuid4().hex,
        handler=handler,
        bootstrap_servers=kafka_bootstrap,
        dlq_publisher=dlq,
        name="test-consumer",
        event_types={topic: ["Ping"]},
    )
    await consumer.start()
    unknown = Envelope.wrap(event_type="Pong", tenant_id="t1", producer="test", payload=Ping(n=7))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, _envelope(1).to_bytes())
    await producer.send_and_wait(topic, b"{this is not json")
    await producer.send_and_wait(topic, _envelope(13).to_bytes())
    await producer.send_and_wait(topic, unknown.to_bytes())
    await producer.send_and_wait(topic, _envelope(2).to_bytes())
    await producer.stop()

    await wait_for(lambda: 2 in seen, timeout=20)
    assert seen.count(1) == 1
    assert 13 not in seen
    assert 7 not in seen
    dead = await _consume(kafka_bootstrap, f"{topic}.dlq", 3)
    reasons = sorted(dict(r.headers)["x-error"].decode() for r in dead)
    assert reasons[0].startswith("ValueError")
    assert reasons[1].startswith("invalid envelope")
    assert reasons[2] == f"unknown event type 'Pong' on {topic} (it carries Ping)"
    assert {dict(r.headers)["x-consumer"] for r in dead} == {b"test-consumer"}
    assert consumer.dead_lettered == 3
    await consumer.stop()
    await dlq.stop()


def _sample(registry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_relay_and_consumer_time_every_message_into_the_hop_histograms(
    kafka_bootstrap, tables
):
    from prometheus_client import CollectorRegistry

    from churn_shared.kafka import PipelineMetrics

    engine, outbox, _ = tables
    topic = _topic()
    await ensure_topics(kafka_bootstrap, [topic], 2)
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry, service="svc")
    publisher = EventPublisher(kafka_bootstrap, client_id="test")
    await publisher.start()
    seen: list[int] = []
    handled_batches: list[int] = []

    async def handler(deliveries: Sequence[Delivery]) -> None:
        handled_batches.append(len(deliveries))
        seen.extend(d.envelope.payload["n"] for d in deliveries)

    consumer = BatchConsumer(
        topics=[topic],
        group_id=uuid.uuid4().hex,
        handler=handler,
        bootstrap_servers=kafka_bootstrap,
        dlq_publisher=publisher,
        name="hop-consumer",
        event_types={topic: ["Ping"]},
        metrics=metrics,
    )
    await consumer.start()
    async with unit_of_work(create_session_factory(engine)) as session:
        await enqueue(session, outbox, topic, [_envelope(i) for i in range(7)])
    relay = OutboxRelay(engine, outbox, publisher, metrics=metrics)
    assert await relay.relay_once() == 7
    await wait_for(lambda: len(seen) == 7, timeout=20)
    await consumer.stop()
    await publisher.stop()

    per_topic = {"service": "svc", "topic": topic}
    per_consumer = {"service": "svc", "consumer": "hop-consumer"}
    assert _sample(registry, "churn_outbox_publish_seconds_count", **per_topic) == 7
    assert _sample(registry, "churn_outbox_relay_batch_size_sum", service="svc") == 7
    assert _sample(registry, "churn_event_hop_seconds_count", **per_consumer, topic=topic) == 7
    assert _sample(registry, "churn_broker_hop_seconds_count", **per_consumer, topic=topic) == 7
    assert _sample(registry, "churn_consumer_batch_size_sum", **per_consumer) == 7
    # One batch-time observation per batch the consumer handed to the handler.
    batches = _sample(registry, "churn_consumer_batch_seconds_count", **per_consumer)
    assert batches == len(handled_batches) >= 1


async def test_a_consumer_whose_broker_died_stops_completely() -> None:
    """After its broker is killed, ``stop()`` leaves no aiokafka task behind (aiokafka's own
    close gave up half way there and left the heartbeat, fetcher and connections retrying the
    dead broker for the rest of the process)."""
    from churn_cli.launcher import start_tansu

    proc, port = await asyncio.to_thread(start_tansu, "127.0.0.1", start_new_session=False)
    bootstrap = f"127.0.0.1:{port}"
    try:
        topic = _topic()
        await ensure_topics(bootstrap, [topic], 1)

        async def handler(deliveries: Sequence[Delivery]) -> None:
            return None

        consumer = BatchConsumer(
            topics=[topic],
            group_id=uuid.uuid4().hex,
            handler=handler,
            bootstrap_servers=bootstrap,
            dlq_publisher=EventPublisher(bootstrap, client_id="unused-dlq"),
            name="orphan-test",
            session_timeout_ms=3000,
            heartbeat_interval_ms=500,
        )
        await consumer.start()
        await asyncio.wait_for(consumer.assigned.wait(), 30)
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        await asyncio.sleep(1.0)  # the client notices: its fetches and heartbeats now fail
        await consumer.stop()
        await asyncio.sleep(0)
        left = [
            task.get_coro().__qualname__
            for task in asyncio.all_tasks()
            if "aiokafka" in task.get_coro().cr_code.co_filename
        ]
        assert left == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def test_stop_ends_a_consumer_whose_handler_is_running(kafka_bootstrap):
    """``stop()`` cancels a batch in progress and the consumer ends: the cancellation is not
    taken for a failed attempt and the batch is not run again (a shutdown once hung on
    that for its whole 120 s limit)."""
    topic = _topic()
    await ensure_topics(kafka_bootstrap, [topic], 1)
    started = asyncio.Event()
    calls = 0

    async def handler(deliveries: Sequence[Delivery]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            started.set()
            await asyncio.sleep(3600)

    dlq = EventPublisher(kafka_bootstrap, client_id="dlq")
    await dlq.start()
    consumer = BatchConsumer(
        topics=[topic],
        group_id=uuid.uuid4().hex,
        handler=handler,
        bootstrap_servers=kafka_bootstrap,
        dlq_publisher=dlq,
        name="busy-consumer",
        event_types={topic: ["Ping"]},
    )
    await consumer.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, _envelope(1).to_bytes())
        await producer.stop()
        await asyncio.wait_for(started.wait(), 20)
        await asyncio.wait_for(consumer.stop(), 20)
        assert calls == 1
        assert consumer.dead_lettered == 0
    finally:
        await consumer.stop()
        await dlq.stop()
