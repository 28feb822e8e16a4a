"""customer.attributes.v1 → scores from the tenant's attribute champion, stored and published
on churn.scores.v1 like online scores; tenants whose champion reads the online features are left
to the event stream (real broker, real database)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from churn_prediction.events.handlers import ATTRIBUTE_SCORER
from churn_prediction.main import create_app
from churn_prediction.models import processed_events, scores_table
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.scoring.scorer import FeatureColumns, PipelineScorer
from churn_prediction.scoring.service import AttributeChange, PredictionService
from churn_prediction.scoring.serving import ServingModel, ServingModels
from churn_prediction.training.procedure import train, train_labelled
from churn_prediction.training.sets import TrainingSet
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import (
    FEATURE_NAMES,
    ChurnScoreComputedV1,
    CustomerAttributesChangedV1,
    Topics,
)
from churn_shared.db import unit_of_work
from churn_shared.kafka import Envelope, EventPublisher
from testkit import wait_for

FAST = {"default_model_customers": 800, "default_model_trees": 40}
CUSTOMERS_SOURCE = {"source": "customers", "label": "Churn"}
EVENTS_SOURCE = {"source": "events", "cutoffs": ["2024-01-01"], "horizon_days": 90}


def telco_like(n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    tenure = rng.integers(0, 72, n)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n)
    charges = rng.uniform(20, 120, n).round(2)
    risk = 1.5 - tenure / 24 + (contract == "Month-to-month") * 1.5 + charges / 100
    churn = rng.uniform(size=n) < 1 / (1 + np.exp(-(risk - 1.5)))
    return pd.DataFrame(
        {
            "customer_id": [f"c-{i}" for i in range(n)],
            "tenure": tenure,
            "Contract": contract,
            "MonthlyCharges": charges,
            "Churn": np.where(churn, "Yes", "No"),
        }
    )


def events_model() -> Any:
    history = simulate_customers(600, seed=3)
    return train(
        TrainingSet(
            X=pd.DataFrame(history.features, columns=list(FEATURE_NAMES)),
            y=history.labels.astype(np.int64),
            feature_names=list(FEATURE_NAMES),
            categorical=[],
            label_source="synthetic",
        ),
        candidates=("logistic_regression",),
    )


async def promote_champion(
    app: Any, client: Any, token_signer: Any, tenant: str, trained: Any, source: dict[str, Any]
) -> str:
    async with unit_of_work(app.state.session_factory) as session:
        version: str = await ModelRegistryService(session).register(tenant, trained, source=source)
    admin = {"Authorization": f"Bearer {token_signer.issue(tenant, role='admin')}"}
    promoted = await client.post(
        f"/v1/models/{version}/promote", headers=admin, json={"alias": "champion"}
    )
    assert promoted.status_code == 200, promoted.text
    await wait_for(
        lambda: app.state.serving_models.for_tenant(tenant).version == version, timeout=30
    )
    return version


def changed(tenant: str, customer_id: str, attributes: dict[str, Any]) -> Envelope:
    return Envelope.wrap(
        tenant_id=tenant,
        producer="test",
        key=customer_id,
        payload=CustomerAttributesChangedV1(
            customer_id=customer_id,
            attributes=attributes,
            import_id=str(uuid.uuid4()),
            changed_at=datetime.now(UTC),
        ),
    )


@contextlib.asynccontextmanager
async def collected(bootstrap: str, topic: str, tenants: set[str]) -> AsyncIterator[list[Envelope]]:
    """The envelopes of these tenants that arrive on ``topic`` while the block runs."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    seen: list[Envelope] = []

    async def pump() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    with contextlib.suppress(Exception):
                        envelope = Envelope.from_bytes(record.value)
                        if envelope.tenant_id in tenants:
                            seen.append(envelope)

    task = asyncio.create_task(pump())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def stored(app: Any, tenant: str) -> list[Any]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(scores_table)
            .where(scores_table.c.tenant_id == tenant)
            .order_by(scores_table.c.id)
        )
        return list(rows.all())


async def claimed(app: Any, event_id: str) -> bool:
    async with app.state.engine.connect() as conn:
        found = await conn.execute(
            sa.select(processed_events.c.event_id).where(
                processed_events.c.consumer == ATTRIBUTE_SCORER,
                processed_events.c.event_id == event_id,
            )
        )
        return found.first() is not None


@pytest.fixture
def tenants() -> tuple[str, str, str]:
    suffix = uuid.uuid4().hex[:10]
    return f"attr-{suffix}", f"evts-{suffix}", f"none-{suffix}"


async def test_attribute_changes_are_scored_by_an_attribute_champion_only(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    kafka_bootstrap: str,
    tenants: tuple[str, str, str],
) -> None:
    attr, evts, none = tenants
    app = create_app(
        make_settings(run_workers=True, scorer_group_id=f"scorer-{attr}", **FAST),
        token_verifier=token_signer.verifier(),
    )
    trained = await asyncio.to_thread(
        train_labelled, telco_like(), "Churn", id_column="customer_id"
    )
    rows = {
        "c1": {"tenure": 2, "Contract": "Month-to-month", "MonthlyCharges": 99.5, "Churn": "Yes"},
        # A missing attribute, an unseen category, attributes the model does not read.
        "c2": {"tenure": 30, "Contract": "Lifetime", "email": "c2@example.com", "plan": "gold"},
        "c3": {"tenure": 60, "Contract": "Two year", "MonthlyCharges": 20.0},
    }
    unreadable = {"tenure": "a long time", "Contract": "One year", "MonthlyCharges": 50.0}
    publisher = EventPublisher(kafka_bootstrap, client_id="test-producer")
    await publisher.start()
    try:
        async with (
            in_process(app) as client,
            collected(kafka_bootstrap, Topics.CHURN_SCORES, {attr, evts, none}) as published,
            collected(kafka_bootstrap, "customer.attributes.v1.dlq", {attr}) as dead,
        ):
            version = await promote_champion(
                app, client, token_signer, attr, trained, CUSTOMERS_SOURCE
            )
            await promote_champion(app, client, token_signer, evts, events_model(), EVENTS_SOURCE)
            admin = {"Authorization": f"Bearer {token_signer.issue(attr, role='admin')}"}
            batch = await client.post(
                "/v1/predictions/batch?drivers=true",
                headers=admin,
                json={
                    "rows": [
                        {k: v for k, v in r.items() if k in trained.feature_names}
                        for r in rows.values()
                    ]
                },
            )
            assert batch.status_code == 200, batch.text
            expected = {
                cid: p["churn_probability"]
                for cid, p in zip(rows, batch.json()["predictions"], strict=True)
            }

            skipped = [changed(evts, "c1", rows["c1"]), changed(none, "c1", rows["c1"])]
            await publisher.publish(CustomerAttributesChangedV1.topic, skipped)
            events = [changed(attr, cid, values) for cid, values in rows.items()]
            events.append(changed(attr, "c4", unreadable))
            # Delivered twice (a relay retry): scored once.
            await publisher.publish(CustomerAttributesChangedV1.topic, [*events, events[0]])
            await publisher.publish(
                CustomerAttributesChangedV1.topic,
                [
                    Envelope(
                        event_type="CustomerAttributesChangedV1",
                        tenant_id=attr,
                        producer="test",
                        key="c5",
                        payload={"customer_id": "", "attributes": {}},
                    )
                ],
            )

            await wait_for(lambda: len(published) >= 3 and len(dead) >= 1, timeout=60)
            for envelope in [*skipped, *events]:
                await wait_for(lambda e=envelope: claimed(app, e.event_id), timeout=30)
            await asyncio.sleep(0.5)  # a second score of c1 would have been published by now

            scores = await stored(app, attr)
            assert sorted(r.customer_id for r in scores) == ["c1", "c2", "c3"]
            for row in scores:
                assert row.churn_probability == pytest.approx(expected[row.customer_id], abs=1e-9)
                assert row.model_version == version
                assert len(row.drivers) == 3
            assert await stored(app, evts) == []
            assert await stored(app, none) == []

            assert {e.tenant_id for e in published} == {attr}
            assert sorted(e.key for e in published) == ["c1", "c2", "c3"]
            for envelope in published:
                event = ChurnScoreComputedV1.model_validate(envelope.payload)
                assert envelope.event_type == "ChurnScoreComputedV1"
                assert event.customer_id == envelope.key
                assert event.churn_probability == pytest.approx(
                    expected[event.customer_id], abs=1e-9
                )
                assert event.model_version == version
                assert event.previous_probability is None
                assert {d.feature for d in event.drivers} <= set(trained.feature_names)
            c1 = next(
                ChurnScoreComputedV1.model_validate(e.payload) for e in published if e.key == "c1"
            )
            # A category's text is not a number: its driver travels without a value.
            assert any(d.feature == "Contract" and d.value is None for d in c1.drivers)
            assert [d.key for d in dead] == ["c5"]
    finally:
        await publisher.stop()


async def test_a_champion_set_before_this_replica_reloaded_it_already_scores(
    make_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    kafka_bootstrap: str,
    tenants: tuple[str, str, str],
) -> None:
    attr = tenants[0]
    app = create_app(
        make_settings(run_workers=True, scorer_group_id=f"scorer-{attr}", **FAST),
        token_verifier=token_signer.verifier(),
    )
    trained = await asyncio.to_thread(
        train_labelled, telco_like(), "Churn", id_column="customer_id"
    )
    publisher = EventPublisher(kafka_bootstrap, client_id="test-producer")
    await publisher.start()
    try:
        async with in_process(app):
            async with unit_of_work(app.state.session_factory) as session:
                version = await ModelRegistryService(session).register(
                    attr, trained, source=CUSTOMERS_SOURCE
                )
            # Registered as challenger: this replica reloads the tenant on that event.
            await wait_for(lambda: attr in app.state.serving_models.challengers, timeout=30)
            # The champion alias moves in the registry, but no ModelPromotedV1 tells this replica.
            async with unit_of_work(app.state.session_factory) as session:
                await ModelRegistryService(session).repository.set_alias(attr, "champion", version)
            await asyncio.sleep(0.5)
            assert attr not in app.state.serving_models.by_tenant
            await publisher.publish(
                CustomerAttributesChangedV1.topic,
                [changed(attr, "c1", {"tenure": 3, "Contract": "Month-to-month"})],
            )

            async def scored() -> list[Any]:
                return await stored(app, attr)

            rows = await wait_for(scored, timeout=60)
            assert [(r.customer_id, r.model_version) for r in rows] == [("c1", version)]
            assert app.state.serving_models.for_tenant(attr).version == version
    finally:
        await publisher.stop()


async def test_a_customer_changed_twice_in_a_batch_is_scored_once_on_the_latest_attributes(
    make_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenants: Any
) -> None:
    attr, _, none = tenants
    settings = make_settings(**FAST)
    app = create_app(settings, token_verifier=token_signer.verifier())
    trained = await asyncio.to_thread(
        train_labelled, telco_like(), "Churn", id_column="customer_id"
    )
    scorer = PipelineScorer(trained)
    models = ServingModels()
    models.put(
        ServingModel(
            version="attr-1",
            tenant_id=attr,
            model=scorer,
            metrics={},
            created_at=datetime.now(UTC),
            kind="pipeline",
        )
    )
    first = {"tenure": 70, "Contract": "Two year", "MonthlyCharges": 20.0}
    latest = {"tenure": 1, "Contract": "Month-to-month", "MonthlyCharges": 110.0}
    async with in_process(app):
        async with unit_of_work(app.state.session_factory) as session:
            events = await PredictionService(models, settings).score_attributes(
                session,
                [
                    AttributeChange(attr, "c1", first),
                    AttributeChange(none, "c1", latest),  # no attribute champion
                    AttributeChange(attr, "c1", latest),
                ],
            )
        rows = await stored(app, attr)
    expected = scorer.predict(
        scorer.parse(FeatureColumns.from_mappings([latest], scorer.feature_names))
    )
    assert [(e.customer_id, e.model_version) for e in events] == [("c1", "attr-1")]
    assert events[0].churn_probability == pytest.approx(float(expected[0]), abs=1e-12)
    assert [(r.customer_id, r.churn_probability) for r in rows] == [
        ("c1", pytest.approx(float(expected[0]), abs=1e-12))
    ]
