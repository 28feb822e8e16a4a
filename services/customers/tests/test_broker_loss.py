"""The fault itself: an in-memory broker dies holding features messages the outbox relay already
had acknowledged (and deleted), and a fresh one starts empty.

Before the score reconciler, those customers' latest features were never scored until the 24 h
refresh (8 of 200 after a kill -9 of ``churn up``, 51 of 100 after a SIGTERM). Here the
customers service ingests events with its relay running on a broker of its own (a separate
Tansu process, not the session's), the broker is killed (SIGKILL) between two waves of events
before anything consumed them, and the service restarts on a fresh broker with a stub scorer
(a consumer of ``customer.features.v1`` that answers on ``churn.scores.v1`` as the prediction
service does). Every customer's latest features must end up scored — and, with the reconciler
off, the first wave must stay unscored, which shows the messages really were lost.

The first wave is posted with the relay running and acknowledged by the broker, which is then
killed with the service still up. The second wave is committed while everything is down
(through the ingest service, as ``POST /v1/events`` does): its outbox rows wait for the restart
and go out then. (Posting to the service while its broker is dead works as well, but its
producer then spends aiokafka's 40 s request timeout on the pending sends at shutdown.)
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from churn_customers.config import Settings
from churn_customers.main import create_app
from churn_customers.models import customer_features, customers, outbox
from churn_customers.schemas import EventIn
from churn_customers.service import EventIngestService
from churn_shared.contracts import ChurnScoreComputedV1, CustomerFeaturesUpdatedV1, Topics
from churn_shared.db import create_engine, create_session_factory, unit_of_work, utcnow
from churn_shared.kafka import BatchConsumer, Envelope, EventPublisher, ensure_topics
from churn_shared.kafka.consumer import Delivery
from testkit import wait_for

CUSTOMERS = 40
#: Customers whose features the first broker acknowledged and then lost.
FIRST_WAVE = CUSTOMERS // 2
#: How long every customer's latest features may take to be scored after the restart.
CONVERGE_SECONDS = 60.0


@asynccontextmanager
async def _broker() -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    """A Tansu broker of this test's own (in-memory storage, like the embedded one)."""
    from churn_cli.launcher import start_tansu

    proc, port = await asyncio.to_thread(start_tansu, "127.0.0.1", start_new_session=False)
    try:
        yield proc, f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.kill()
        await asyncio.to_thread(proc.wait, 10)


class StubScorer:
    """What the prediction service does with a features message: score it now, publish
    ``ChurnScoreComputedV1``. Records the ``as_of`` of every snapshot it scored."""

    def __init__(self, bootstrap: str) -> None:
        self._publisher = EventPublisher(bootstrap, client_id="stub-scorer", linger_ms=0)
        self._consumer = BatchConsumer(
            topics=[Topics.CUSTOMER_FEATURES],
            group_id=f"stub-scorer-{uuid.uuid4().hex[:8]}",
            handler=self._score,
            bootstrap_servers=bootstrap,
            dlq_publisher=self._publisher,
            name="stub-scorer",
        )
        self.scored: list[tuple[str, str, datetime, bool]] = []

    async def _score(self, deliveries: Sequence[Delivery]) -> None:
        envelopes: list[Envelope] = []
        for delivery in deliveries:
            features = CustomerFeaturesUpdatedV1.model_validate(delivery.envelope.payload)
            scored_at = utcnow()
            envelopes.append(
                Envelope.wrap(
                    event_type="ChurnScoreComputedV1",
                    tenant_id=delivery.envelope.tenant_id,
                    producer="stub-scorer",
                    key=features.customer_id,
                    occurred_at=scored_at,
                    payload=ChurnScoreComputedV1(
                        customer_id=features.customer_id,
                        churn_probability=0.5,
                        risk_level="medium",
                        model_version="stub",
                        scored_at=scored_at,
                        backfill=features.backfill,
                    ),
                )
            )
            self.scored.append(
                (
                    delivery.envelope.tenant_id,
                    features.customer_id,
                    features.as_of,
                    features.backfill,
                )
            )
        await self._publisher.publish(Topics.CHURN_SCORES, envelopes)

    async def __aenter__(self) -> StubScorer:
        await self._publisher.start()
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()
        await self._publisher.stop()


def _events(customer_ids: Sequence[str]) -> list[dict[str, Any]]:
    start = datetime.now(UTC) - timedelta(days=20)
    return [
        {
            "event_id": uuid.uuid4().hex,
            "customer_id": cid,
            "type": "order_placed",
            "occurred_at": (start + timedelta(hours=i)).isoformat(),
            "properties": {"amount": 10.0 + i},
        }
        for i, cid in enumerate(customer_ids)
    ]


async def _post(client: httpx.AsyncClient, tenant: dict[str, Any], ids: Sequence[str]) -> None:
    for start in range(0, len(ids), 5):
        response = await client.post(
            "/v1/events",
            json={"events": _events(ids[start : start + 5])},
            headers=tenant["headers"],
        )
        assert response.status_code == 202, response.text


async def _outbox_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (await conn.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one()
        )


async def _unscored(engine: AsyncEngine, tenant_id: str) -> list[str]:
    """The tenant's customers whose latest features no stored score is as new as."""
    f, c = customer_features.c, customers.c
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(f.customer_id)
            .join(customers, sa.and_(c.tenant_id == f.tenant_id, c.customer_id == f.customer_id))
            .where(
                f.tenant_id == tenant_id,
                sa.or_(c.scored_at.is_(None), c.scored_at < f.as_of),
            )
            .order_by(f.customer_id)
        )
        return [cid for (cid,) in rows]


@pytest.mark.parametrize("reconcile", [True, False], ids=["reconciler", "no-reconciler"])
async def test_features_lost_with_the_broker_are_scored_after_the_restart(
    reconcile: bool,
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    ids = [f"c{i:03d}" for i in range(CUSTOMERS)]
    group = f"customers-loss-{uuid.uuid4().hex[:8]}"
    quick = {
        "consumer_group": group,
        "score_reconcile_grace_seconds": 1.0,
        "score_reconcile_interval_seconds": 0.5,
        "score_reconcile_max_backoff_seconds": 2.0,
    }
    first, second = ids[:FIRST_WAVE], ids[FIRST_WAVE:]

    # 1. The relay publishes the first wave to a broker that then dies holding it; nothing
    #    consumed it (the prediction side is not running). The second wave is committed while
    #    everything is down: it waits in the outbox.
    async with _broker() as (broker, bootstrap):
        settings = make_settings(
            kafka_bootstrap_servers=bootstrap, **{**quick, "score_reconcile_interval_seconds": 0}
        )
        app = create_app(settings, token_verifier=token_signer.verifier())
        async with in_process(app) as client:
            engine: AsyncEngine = app.state.engine
            await _post(client, tenant, first)

            async def acknowledged() -> bool:
                return await _outbox_rows(engine) == 0

            await wait_for(acknowledged, timeout=30)
            broker.kill()  # SIGKILL: the in-memory log is gone
            await asyncio.to_thread(broker.wait, 10)
    await _ingest_directly(settings, tenant["id"], second)

    # 2. The service comes back on a fresh, empty broker, with a scorer.
    async with _broker() as (_, bootstrap):
        await ensure_topics(bootstrap, [Topics.CUSTOMER_FEATURES, Topics.CHURN_SCORES])
        async with StubScorer(bootstrap) as scorer:
            overrides = dict(quick)
            if not reconcile:
                overrides["score_reconcile_interval_seconds"] = 0
            app = create_app(
                make_settings(kafka_bootstrap_servers=bootstrap, **overrides),
                token_verifier=token_signer.verifier(),
            )
            async with in_process(app):
                engine = app.state.engine

                async def converged() -> bool:
                    return await _unscored(engine, tenant["id"]) == []

                if reconcile:
                    await wait_for(converged, timeout=CONVERGE_SECONDS, interval=0.25)
                    resent = {cid for t, cid, _, _ in scorer.scored if t == tenant["id"]}
                    assert resent >= set(first)
                    assert not any(backfill for *_, backfill in scorer.scored)
                else:
                    # The second wave, still in the outbox, goes out and is scored ...
                    async def second_wave_scored() -> bool:
                        return set(await _unscored(engine, tenant["id"])) <= set(first)

                    await wait_for(second_wave_scored, timeout=CONVERGE_SECONDS, interval=0.25)
                    await asyncio.sleep(3.0)  # longer than the reconciler's grace and interval
                    # ... the first wave, acknowledged by the dead broker, never is.
                    assert await _unscored(engine, tenant["id"]) == first


async def _ingest_directly(settings: Settings, tenant_id: str, ids: Sequence[str]) -> None:
    """Commit events (and their outbox rows) while no relay runs."""
    engine = create_engine(settings.database_url.get_secret_value())
    try:
        async with unit_of_work(create_session_factory(engine)) as session:
            batch = [EventIn.model_validate(e) for e in _events(ids)]
            await EventIngestService(session).record_events(tenant_id, batch)
        assert await _outbox_rows(engine) == len(ids)
    finally:
        await engine.dispose()
