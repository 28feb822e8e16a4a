"""The webhook delivery worker on a real database with real receivers on 127.0.0.1: the URL
policy at send time, the idempotency header, and a shutdown that neither repeats a webhook
nor leaves one sent but unrecorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.config import Settings
from churn_alerts.models import AlertChannel, Delivery
from churn_alerts.rules import TenantScore
from churn_alerts.service import AlertService
from churn_alerts.signing import new_secret
from churn_alerts.worker import MIGRATIONS, WebhookDeliveryWorker
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import (
    create_engine,
    create_session_factory,
    run_migrations,
    unit_of_work,
    utcnow,
)
from testkit import wait_for

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def session_factory(database_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(database_url)
    await run_migrations(engine, MIGRATIONS)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def settings(database_url: str) -> Any:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "dev_mode": True,
            "log_json": False,
            "delivery_poll_interval_seconds": 0.05,
            "delivery_backoff_base_seconds": 0.1,
            "delivery_timeout_seconds": 15.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


class StubResolver:
    def __init__(self, table: Mapping[str, Sequence[str]], delay: float = 0.0) -> None:
        self.table = table
        self.delay = delay
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        await asyncio.sleep(self.delay)
        return self.table[host]


async def _queue(factory: Factory, url: str, customers: int = 1) -> str:
    """A tenant with one channel at ``url`` (stored as is, as a channel created before the
    current URL policy would be) and ``customers`` alerts queued for it; returns the tenant."""
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    async with unit_of_work(factory) as session:
        session.add(
            AlertChannel(
                tenant_id=tenant_id, kind="webhook", name="hook", url=url, secret=new_secret()
            )
        )
        await session.flush()
        scores = [
            TenantScore(
                tenant_id,
                ChurnScoreComputedV1(
                    customer_id=f"c-{i}",
                    churn_probability=0.9,
                    previous_probability=None,
                    risk_level="high",
                    model_version="m-test",
                    scored_at=utcnow(),
                ),
            )
            for i in range(customers)
        ]
        outcome = await AlertService(session).raise_alerts(scores)
    assert outcome.deliveries == customers
    return tenant_id


async def _deliveries(factory: Factory, tenant_id: str) -> list[Delivery]:
    async with factory() as session:
        result = await session.exec(select(Delivery).where(Delivery.tenant_id == tenant_id))
        return sorted(result.all(), key=lambda d: d.id)


async def _expire_leases(factory: Factory) -> None:
    """What the clock does after a crash: claimed-but-unrecorded deliveries become due again."""
    async with unit_of_work(factory) as session:
        await session.exec(
            sa.update(Delivery)
            .where(col(Delivery.status) == "pending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


async def _run_for(worker: WebhookDeliveryWorker, seconds: float) -> None:
    worker.start()
    await asyncio.sleep(seconds)
    await worker.stop()


class TestSendTimePolicy:
    @pytest.mark.parametrize(
        ("name", "address", "expected"),
        [
            ("evil.example", "127.0.0.1", "evil.example resolves to 127.0.0.1, a loopback"),
            ("meta.example", "100.100.100.200", "100.100.100.200, a shared (carrier-grade NAT)"),
            ("v6.example", "::ffff:127.0.0.1", "leads to 127.0.0.1, a loopback"),
        ],
    )
    async def test_name_resolving_to_a_special_address_fails_at_once_unsent(
        self, session_factory, settings, webhook_receiver, name, address, expected
    ):
        port = webhook_receiver.server.server_address[1]
        tenant_id = await _queue(session_factory, f"http://{name}:{port}/hooks/churn")
        resolver = StubResolver({name: [address]})
        worker = WebhookDeliveryWorker(session_factory, settings(dev_mode=False), resolver=resolver)
        try:
            attempted = await worker.deliver_once()
            again = await worker.deliver_once()
        finally:
            await worker.stop()
        [delivery] = await _deliveries(session_factory, tenant_id)
        assert (attempted, again) == (1, 0)
        assert resolver.asked == [name]
        assert delivery.status == "failed"
        assert delivery.attempts == 1
        assert delivery.last_error is not None
        assert delivery.last_error.startswith("refused: ")
        assert expected in delivery.last_error
        assert webhook_receiver.received == []

    async def test_stored_url_with_unicode_full_stops_does_not_reach_loopback(
        self, session_factory, settings, webhook_receiver
    ):
        port = webhook_receiver.server.server_address[1]
        tenant_id = await _queue(session_factory, f"http://127\u30020\u30020\u30021:{port}/x")
        worker = WebhookDeliveryWorker(session_factory, settings(dev_mode=False))
        try:
            await worker.deliver_once()
        finally:
            await worker.stop()
        [delivery] = await _deliveries(session_factory, tenant_id)
        assert delivery.status == "failed"
        assert delivery.last_error == (
            "refused: 127.0.0.1 is a loopback address (RFC 1122, 127.0.0.0/8)"
        )
        assert webhook_receiver.received == []

    async def test_development_mode_still_delivers_to_loopback(
        self, session_factory, settings, webhook_receiver
    ):
        tenant_id = await _queue(session_factory, webhook_receiver.url)
        worker = WebhookDeliveryWorker(session_factory, settings(dev_mode=True))
        try:
            await worker.deliver_once()
        finally:
            await worker.stop()
        [delivery] = await _deliveries(session_factory, tenant_id)
        assert delivery.status == "delivered"
        assert len(webhook_receiver.received) == 1


class TestIdempotencyHeader:
    async def test_webhook_id_is_the_delivery_id_on_every_retry(
        self, session_factory, settings, flaky_webhook_receiver
    ):
        tenant_id = await _queue(session_factory, flaky_webhook_receiver.url)
        worker = WebhookDeliveryWorker(session_factory, settings())
        try:
            worker.start()
            delivered = await wait_for(
                lambda: _all_with_status(session_factory, tenant_id, "delivered"), timeout=30
            )
        finally:
            await worker.stop()
        ids = [r["headers"]["webhook-id"] for r in flaky_webhook_receiver.received]
        assert ids == [delivered[0].id] * 3
        assert delivered[0].attempts == 3


async def _all_with_status(factory: Factory, tenant_id: str, status: str) -> list[Delivery]:
    rows = await _deliveries(factory, tenant_id)
    return rows if rows and all(d.status == status for d in rows) else []


async def _received(receiver: Any, count: int) -> bool:
    return len(receiver.received) >= count


class TestShutdown:
    async def test_sends_in_flight_finish_and_are_recorded_so_a_restart_repeats_none(
        self, session_factory, settings, slow_webhook_receiver
    ):
        receiver = slow_webhook_receiver(1.0)
        tenant_id = await _queue(session_factory, receiver.url, customers=4)
        worker = WebhookDeliveryWorker(session_factory, settings())
        worker.start()
        await wait_for(lambda: _received(receiver, 4), timeout=30)
        await worker.stop()  # every request is out, no answer has come back yet

        rows = await _deliveries(session_factory, tenant_id)
        assert [(d.status, d.attempts) for d in rows] == [("delivered", 1)] * 4

        await _expire_leases(session_factory)
        await _run_for(WebhookDeliveryWorker(session_factory, settings()), 1.0)
        ids = sorted(r["headers"]["webhook-id"] for r in receiver.received)
        assert ids == [d.id for d in rows]  # each alert exactly once

    async def test_send_abandoned_after_the_request_was_written_is_not_repeated(
        self, session_factory, settings, slow_webhook_receiver
    ):
        receiver = slow_webhook_receiver(5.0)
        tenant_id = await _queue(session_factory, receiver.url)
        worker = WebhookDeliveryWorker(
            session_factory, settings(delivery_shutdown_grace_seconds=0.2)
        )
        worker.start()
        await wait_for(lambda: _received(receiver, 1), timeout=30)
        await worker.stop()

        [delivery] = await _deliveries(session_factory, tenant_id)
        assert delivery.status == "unknown"
        assert delivery.attempts == 1
        assert delivery.last_error is not None
        assert "after the request was sent" in delivery.last_error

        await _expire_leases(session_factory)
        await _run_for(WebhookDeliveryWorker(session_factory, settings()), 0.5)
        assert len(receiver.received) == 1

    async def test_send_abandoned_before_the_request_was_written_goes_out_once_after_restart(
        self, session_factory, settings, webhook_receiver
    ):
        port = webhook_receiver.server.server_address[1]
        url = f"http://hooks.example.com:{port}/hooks/churn"
        tenant_id = await _queue(session_factory, url)
        stuck_dns = StubResolver({"hooks.example.com": ["127.0.0.1"]}, delay=60)
        worker = WebhookDeliveryWorker(
            session_factory, settings(delivery_shutdown_grace_seconds=0.2), resolver=stuck_dns
        )
        worker.start()
        await wait_for(lambda: stuck_dns.asked, timeout=30)
        await worker.stop()

        [delivery] = await _deliveries(session_factory, tenant_id)
        assert delivery.status == "pending"
        assert delivery.attempts == 0  # the interrupted attempt is not counted
        assert delivery.next_attempt_at <= utcnow()
        assert delivery.last_error is not None
        assert "before the request was sent" in delivery.last_error
        assert webhook_receiver.received == []

        dns = StubResolver({"hooks.example.com": ["127.0.0.1"]})
        restarted = WebhookDeliveryWorker(session_factory, settings(), resolver=dns)
        restarted.start()
        try:
            [delivered] = await wait_for(
                lambda: _all_with_status(session_factory, tenant_id, "delivered"), timeout=30
            )
        finally:
            await restarted.stop()
        assert delivered.attempts == 1
        assert [r["headers"]["webhook-id"] for r in webhook_receiver.received] == [delivered.id]

    async def test_a_cancelled_round_still_records_what_it_sent(
        self, session_factory, settings, slow_webhook_receiver
    ):
        """Even a hard cancel (no grace) records the cancelled send instead of dropping it."""
        receiver = slow_webhook_receiver(5.0)
        tenant_id = await _queue(session_factory, receiver.url)
        worker = WebhookDeliveryWorker(session_factory, settings())
        round_ = asyncio.create_task(worker.deliver_once())
        await wait_for(lambda: _received(receiver, 1), timeout=30)
        round_.cancel()
        with pytest.raises(asyncio.CancelledError):
            await round_
        await worker.stop()
        [delivery] = await _deliveries(session_factory, tenant_id)
        assert delivery.status == "unknown"
        assert len(receiver.received) == 1
