"""The customers service over HTTP and Kafka, against a real database and a real broker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from churn_customers.main import create_app
from churn_customers.service import EventIngestService
from churn_shared.contracts import (
    PROFILE_FEATURE_NAMES,
    ChurnScoreComputedV1,
    CustomerEventReceivedV1,
    Topics,
)
from churn_shared.db import unit_of_work, utcnow
from churn_shared.kafka import Envelope
from testkit import read_topic, wait_for

NOW = datetime.now(UTC)


def event(
    customer_id: str,
    kind: str = "order_placed",
    *,
    event_id: str | None = None,
    days_ago: float = 1.0,
    **properties: Any,
) -> dict[str, Any]:
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "customer_id": customer_id,
        "type": kind,
        "occurred_at": (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(),
        "properties": properties,
    }


async def post_events(
    client: httpx.AsyncClient, tenant: dict[str, Any], events: list[dict[str, Any]], **params: Any
) -> httpx.Response:
    return await client.post(
        "/v1/events", json={"events": events}, headers=tenant["headers"], params=params
    )


async def customer_ids(client: httpx.AsyncClient, tenant: dict[str, Any]) -> list[str]:
    response = await client.get("/v1/customers", params={"limit": 500}, headers=tenant["headers"])
    assert response.status_code == 200
    return [item["customer_id"] for item in response.json()["items"]]


async def produce(bootstrap: str, topic: str, values: list[tuple[str | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in values:
            await producer.send_and_wait(topic, value, key=key.encode() if key else None)
    finally:
        await producer.stop()


def event_envelope(tenant_id: str, payload: dict[str, Any]) -> Envelope:
    return Envelope.wrap(
        tenant_id=tenant_id,
        producer="test",
        key=payload["customer_id"],
        payload=CustomerEventReceivedV1.model_validate(payload),
    )


def score_envelope(
    tenant_id: str, customer_id: str, probability: float, scored_at: datetime
) -> Envelope:
    return Envelope.wrap(
        tenant_id=tenant_id,
        producer="test",
        key=customer_id,
        payload=ChurnScoreComputedV1(
            customer_id=customer_id,
            churn_probability=probability,
            risk_level="high" if probability >= 0.7 else "medium" if probability >= 0.4 else "low",
            model_version="m-test",
            scored_at=scored_at,
        ),
    )


class TestIngestEvents:
    async def test_features_are_computed_and_published_on_the_features_topic(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
    ) -> None:
        events = [
            event("c1", "signup", days_ago=100),
            event("c1", amount=100.0, discount=10.0, days_ago=50),
            event("c1", amount=50.0, days_ago=10),
            event("c1", "order_placed", amount=20.0, days_ago=200),  # before signup
            event("c1", "email_sent", days_ago=5),
            event("c1", "email_sent", days_ago=4),
            event("c1", "email_opened", days_ago=4),
            event("c1", "login", days_ago=2),
            event("c1", "order_returned", amount=50.0, days_ago=3),
            event("c1", "loyalty_points_changed", delta=40, days_ago=3),
        ]

        response = await post_events(client, tenant, events)

        assert response.status_code == 202
        assert response.json() == {"accepted": 10, "duplicates": 0}
        profile = (await client.get("/v1/customers/c1/features", headers=tenant["headers"])).json()
        features = profile["features"]
        assert list(features) == list(PROFILE_FEATURE_NAMES)
        assert features["total_orders"] == 3
        assert features["total_spent"] == 170.0
        assert features["avg_order_value"] == pytest.approx(170.0 / 3)
        assert features["orders_last_90d"] == 2
        assert features["spend_last_90d"] == 150.0
        assert features["email_open_rate"] == 0.5
        assert features["logins_last_30d"] == 1
        assert features["discount_usage_rate"] == pytest.approx(1 / 3)
        assert features["returns_count"] == 1
        assert features["loyalty_points"] == 40
        assert features["days_since_last_order"] == pytest.approx(10.0, abs=0.01)
        assert features["account_age_days"] == pytest.approx(100.0, abs=0.01)

        def is_ours(value: bytes, _: list[tuple[str, bytes]]) -> bool:
            return orjson.loads(value)["tenant_id"] == tenant["id"]

        published = await read_topic(kafka_bootstrap, Topics.CUSTOMER_FEATURES, is_ours)
        envelope = Envelope.from_bytes(published[0])
        assert envelope.event_type == "CustomerFeaturesUpdatedV1"
        assert envelope.key == "c1"
        assert envelope.payload["customer_id"] == "c1"
        assert envelope.payload["features"] == features
        assert envelope.payload["backfill"] is False

    async def test_backfill_flag_reaches_the_features_update(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
    ) -> None:
        response = await post_events(client, tenant, [event("old", amount=5)], backfill="true")
        assert response.status_code == 202

        def is_ours(value: bytes, _: list[tuple[str, bytes]]) -> bool:
            return orjson.loads(value)["tenant_id"] == tenant["id"]

        published = await read_topic(kafka_bootstrap, Topics.CUSTOMER_FEATURES, is_ours)
        assert Envelope.from_bytes(published[0]).payload["backfill"] is True

    async def test_duplicates_are_counted_and_applied_once(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        first = await post_events(
            client,
            tenant,
            [
                event("c1", event_id="e1", amount=10),
                event("c1", event_id="e2", amount=20),
                event("c1", event_id="e1", amount=10),
            ],
        )
        second = await post_events(
            client,
            tenant,
            [event("c1", event_id="e1", amount=10), event("c1", event_id="e3", amount=30)],
        )

        assert first.json() == {"accepted": 2, "duplicates": 1}
        assert second.json() == {"accepted": 1, "duplicates": 1}
        features = (
            await client.get("/v1/customers/c1/features", headers=tenant["headers"])
        ).json()["features"]
        assert features["total_orders"] == 3
        assert features["total_spent"] == 60.0

    async def test_concurrent_batches_for_one_new_customer_all_count(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        batches = [[event("shared", amount=1.0) for _ in range(20)] for _ in range(6)]

        responses = await asyncio.gather(*(post_events(client, tenant, b) for b in batches))

        assert [r.status_code for r in responses] == [202] * 6
        features = (
            await client.get("/v1/customers/shared/features", headers=tenant["headers"])
        ).json()["features"]
        assert features["total_orders"] == 120
        assert await customer_ids(client, tenant) == ["shared"]

    async def test_event_ids_are_scoped_per_tenant(
        self,
        client: httpx.AsyncClient,
        tenant: dict[str, Any],
        other_tenant: dict[str, Any],
    ) -> None:
        await post_events(client, tenant, [event("c1", event_id="same")])

        response = await post_events(client, other_tenant, [event("c1", event_id="same")])

        assert response.json() == {"accepted": 1, "duplicates": 0}

    @pytest.mark.parametrize(
        "bad",
        [
            {"type": "teleported"},
            {"occurred_at": "2024-06-01T10:00:00"},
            {"occurred_at": 0},
            {"occurred_at": 1717236000.5},
            {"occurred_at": True},
            {"properties": {"amount": -1}},
            {"properties": {"amount": "12.5"}},
            {"properties": {"discount": True}},
            {"event_id": "x" * 65},
            {"customer_id": ""},
        ],
        ids=[
            "unknown-type",
            "naive-time",
            "epoch-number-time",
            "float-time",
            "bool-time",
            "negative-amount",
            "string-amount",
            "bool-discount",
            "long-id",
            "empty-customer",
        ],
    )
    async def test_an_invalid_event_rejects_the_whole_batch(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], bad: dict[str, Any]
    ) -> None:
        valid = event("good", amount=10)
        invalid = {**event("bad", amount=5), **bad}

        response = await post_events(client, tenant, [valid, invalid])

        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/problem+json")
        assert await customer_ids(client, tenant) == []

    async def test_more_than_ten_thousand_events_is_413(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        events = [event(f"c{i % 50}", "login") for i in range(10_001)]

        response = await post_events(client, tenant, events)

        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        assert await customer_ids(client, tenant) == []

    async def test_a_viewer_cannot_post_events(
        self, client: httpx.AsyncClient, token_signer: Any
    ) -> None:
        token = token_signer.issue(f"t-{uuid.uuid4().hex[:8]}", role="viewer")

        response = await client.post(
            "/v1/events",
            json={"events": [event("c1")]},
            headers={"Authorization": f"Bearer {token}"},
        )

        assert response.status_code == 403

    async def test_without_a_token_is_401(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/events", json={"events": [event("c1")]})

        assert response.status_code == 401


class TestKafkaIngest:
    async def test_events_on_the_events_topic_are_ingested_once(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
    ) -> None:
        order = event("k1", amount=25.0, days_ago=2)
        envelope = event_envelope(tenant["id"], order)
        login = event_envelope(tenant["id"], event("k1", "login"))
        await produce(
            kafka_bootstrap,
            Topics.CUSTOMER_EVENTS,
            [("k1", envelope.to_bytes()), ("k1", envelope.to_bytes()), ("k1", login.to_bytes())],
        )

        async def ingested() -> dict[str, Any] | None:
            response = await client.get("/v1/customers/k1/features", headers=tenant["headers"])
            if response.status_code != 200:
                return None
            features: dict[str, Any] = response.json()["features"]
            return features if features["logins_last_30d"] == 1 else None

        features = await wait_for(ingested, 20)
        assert features["total_orders"] == 1
        assert features["total_spent"] == 25.0
        # The same event over HTTP afterwards is a duplicate.
        again = await post_events(client, tenant, [order])
        assert again.json() == {"accepted": 0, "duplicates": 1}

    async def test_a_malformed_message_is_dead_lettered_and_the_next_one_processed(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
    ) -> None:
        marker = f"not-an-envelope-{uuid.uuid4().hex}".encode()
        bad_payload = event_envelope(tenant["id"], event("bad", amount=1.0))
        bad_payload = bad_payload.model_copy(
            update={"payload": {**bad_payload.payload, "properties": {"amount": -3}}}
        )
        # A type this topic does not carry (a typo, a version not deployed yet): not applied,
        # so dead-lettered with its reason rather than dropped.
        unknown = event_envelope(tenant["id"], event("unknown-type", "login")).model_copy(
            update={"event_type": "CustomerEventReceivedV9"}
        )
        good = event_envelope(tenant["id"], event("after-bad", "login"))
        await produce(
            kafka_bootstrap,
            Topics.CUSTOMER_EVENTS,
            [
                ("bad", marker),
                ("bad", bad_payload.to_bytes()),
                ("unknown-type", unknown.to_bytes()),
                ("after-bad", good.to_bytes()),
            ],
        )

        async def good_ingested() -> bool:
            return "after-bad" in await customer_ids(client, tenant)

        await wait_for(good_ingested, 20)
        dlq = Topics.dead_letter(Topics.CUSTOMER_EVENTS)
        assert await read_topic(kafka_bootstrap, dlq, lambda value, _: value == marker)

        def is_bad_payload(value: bytes, headers: list[tuple[str, bytes]]) -> bool:
            return bad_payload.event_id.encode() in value and any(
                k == "x-error" for k, _ in headers
            )

        assert await read_topic(kafka_bootstrap, dlq, is_bad_payload)

        def is_unknown_type(value: bytes, headers: list[tuple[str, bytes]]) -> bool:
            reason = dict(headers).get("x-error", b"").decode()
            return unknown.event_id.encode() in value and reason.startswith(
                "unknown event type 'CustomerEventReceivedV9' on customer.events.v1"
            )

        assert await read_topic(kafka_bootstrap, dlq, is_unknown_type)
        ids = await customer_ids(client, tenant)
        assert "bad" not in ids
        assert "unknown-type" not in ids

    async def test_an_event_for_an_unknown_tenant_is_dead_lettered_with_its_reason(
        self,
        client: httpx.AsyncClient,
        tenant: dict[str, Any],
        token_signer: Any,
        kafka_bootstrap: str,
    ) -> None:
        stranger = f"t-nobody-{uuid.uuid4().hex[:12]}"
        lost = event_envelope(stranger, event("stranger", "login"))
        good = event_envelope(tenant["id"], event("known", "login"))
        await produce(
            kafka_bootstrap,
            Topics.CUSTOMER_EVENTS,
            [("stranger", lost.to_bytes()), ("known", good.to_bytes())],
        )

        def is_lost(value: bytes, headers: list[tuple[str, bytes]]) -> bool:
            return lost.event_id.encode() in value and dict(headers).get("x-error") == (
                f"unknown tenant {stranger!r}".encode()
            )

        dlq = Topics.dead_letter(Topics.CUSTOMER_EVENTS)
        assert await read_topic(kafka_bootstrap, dlq, is_lost)

        async def good_ingested() -> bool:
            return "known" in await customer_ids(client, tenant)

        await wait_for(good_ingested, 20)
        # Nothing was stored for the tenant nobody knows.
        as_stranger = {"headers": {"Authorization": f"Bearer {token_signer.issue(stranger)}"}}
        assert await customer_ids(client, as_stranger) == []

    async def test_events_wait_in_the_broker_while_auth_cannot_say_who_their_tenant_is(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: dict[str, Any],
        known_tenants: Any,
        kafka_bootstrap: str,
    ) -> None:
        consumer = app.state.workers.events_consumer
        held = event_envelope(tenant["id"], event("held", "login"))
        known_tenants.down = True
        try:
            await produce(kafka_bootstrap, Topics.CUSTOMER_EVENTS, [("held", held.to_bytes())])
            await wait_for(lambda: consumer.postponed >= 2, 20)
            assert "held" not in await customer_ids(client, tenant)
        finally:
            known_tenants.down = False

        async def held_ingested() -> bool:
            return "held" in await customer_ids(client, tenant)

        await wait_for(held_ingested, 30)
        assert consumer.dead_lettered == 0


class TestScores:
    async def test_latest_score_is_stored_and_orders_the_list(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
    ) -> None:
        await post_events(client, tenant, [event(c) for c in ("low", "high", "unscored")])
        newer = NOW
        older = NOW - timedelta(hours=1)
        messages = [
            score_envelope(tenant["id"], "high", 0.91, newer),
            score_envelope(tenant["id"], "low", 0.12, newer),
            score_envelope(tenant["id"], "high", 0.05, older),  # older: ignored
            score_envelope(tenant["id"], "ghost", 0.5, newer),  # unknown customer: ignored
        ]
        await produce(
            kafka_bootstrap,
            Topics.CHURN_SCORES,
            [(m.key, m.to_bytes()) for m in messages],
        )

        async def scored() -> dict[str, Any] | None:
            response = await client.get(
                "/v1/customers",
                params={"sort": "-churn_probability"},
                headers=tenant["headers"],
            )
            items = response.json()["items"]
            ready = all(i["scored_at"] for i in items if i["customer_id"] != "unscored")
            return response.json() if ready else None

        page = await wait_for(scored, 20)
        assert [i["customer_id"] for i in page["items"]] == ["high", "low", "unscored"]
        high = page["items"][0]
        assert high["churn_probability"] == 0.91
        assert high["risk_level"] == "high"
        assert high["model_version"] == "m-test"
        detail = (await client.get("/v1/customers/high", headers=tenant["headers"])).json()
        assert detail["churn_probability"] == 0.91
        assert detail["features"]["total_orders"] == 1
        assert "ghost" not in await customer_ids(client, tenant)


class TestCustomers:
    async def test_create_read_update_and_delete(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        h = tenant["headers"]
        created = await client.post(
            "/v1/customers",
            json={"customer_id": "crm-1", "attributes": {"plan": "gold", "region": "eu"}},
            headers=h,
        )
        assert created.status_code == 201
        assert created.json()["attributes"] == {"plan": "gold", "region": "eu"}
        assert created.json()["first_seen_at"] is None

        conflict = await client.post("/v1/customers", json={"customer_id": "crm-1"}, headers=h)
        assert conflict.status_code == 409

        patched = await client.patch(
            "/v1/customers/crm-1",
            json={"attributes": {"plan": "silver", "region": None, "seats": 3}},
            headers=h,
        )
        assert patched.status_code == 200
        assert patched.json()["attributes"] == {"plan": "silver", "seats": 3}

        empty = (await client.get("/v1/customers/crm-1/features", headers=h)).json()
        assert empty["features"]["total_orders"] == 0
        assert empty["features"]["account_age_days"] is None

        order = event("crm-1", event_id="o-1", amount=12)
        await post_events(client, tenant, [order])
        detail = (await client.get("/v1/customers/crm-1", headers=h)).json()
        assert detail["features"]["total_orders"] == 1
        assert detail["first_seen_at"] is not None
        assert detail["attributes"] == {"plan": "silver", "seats": 3}

        deleted = await client.delete("/v1/customers/crm-1", headers=h)
        assert deleted.status_code == 204
        assert (await client.get("/v1/customers/crm-1", headers=h)).status_code == 404
        assert (await client.delete("/v1/customers/crm-1", headers=h)).status_code == 404
        # Its events went too: the same event id is new again, and counted from scratch.
        again = await post_events(client, tenant, [order])
        assert again.json() == {"accepted": 1, "duplicates": 0}
        features = (await client.get("/v1/customers/crm-1/features", headers=h)).json()
        assert features["features"]["total_orders"] == 1

    async def test_another_tenants_customer_is_not_found(
        self,
        client: httpx.AsyncClient,
        tenant: dict[str, Any],
        other_tenant: dict[str, Any],
    ) -> None:
        await post_events(client, tenant, [event("mine")])
        await post_events(client, other_tenant, [event("theirs")])
        h = tenant["headers"]

        assert (await client.get("/v1/customers/theirs", headers=h)).status_code == 404
        assert (await client.get("/v1/customers/theirs/features", headers=h)).status_code == 404
        patch = await client.patch("/v1/customers/theirs", json={"attributes": {}}, headers=h)
        assert patch.status_code == 404
        assert (await client.delete("/v1/customers/theirs", headers=h)).status_code == 404
        assert await customer_ids(client, tenant) == ["mine"]
        assert await customer_ids(client, other_tenant) == ["theirs"]

    async def test_pagination_walks_every_customer_exactly_once_in_each_order(
        self, client: httpx.AsyncClient, tenant: dict[str, Any], kafka_bootstrap: str
    ) -> None:
        ids = [f"p{i:02d}" for i in range(23)]
        await post_events(client, tenant, [event(c) for c in ids])
        probabilities = [0.9, 0.5, 0.5, 0.5, 0.2, 0.9, 0.1]  # ties on purpose
        messages = [
            score_envelope(tenant["id"], ids[i * 3], p, NOW) for i, p in enumerate(probabilities)
        ]
        await produce(
            kafka_bootstrap, Topics.CHURN_SCORES, [(m.key, m.to_bytes()) for m in messages]
        )

        async def all_scored() -> bool:
            response = await client.get(
                "/v1/customers",
                params={"sort": "-churn_probability", "limit": 500},
                headers=tenant["headers"],
            )
            return sum(i["scored_at"] is not None for i in response.json()["items"]) == 7

        await wait_for(all_scored, 20)

        for sort in ("customer_id", "-churn_probability", "-updated_at"):
            seen: list[dict[str, Any]] = []
            cursor: str | None = None
            pages = 0
            while True:
                params: dict[str, Any] = {"limit": 5, "sort": sort}
                if cursor:
                    params["cursor"] = cursor
                response = await client.get(
                    "/v1/customers", params=params, headers=tenant["headers"]
                )
                assert response.status_code == 200
                body = response.json()
                seen.extend(body["items"])
                pages += 1
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert pages == 5
            assert sorted(i["customer_id"] for i in seen) == ids
            assert len(seen) == len(ids)
            if sort == "customer_id":
                assert [i["customer_id"] for i in seen] == ids
            if sort == "-churn_probability":
                keys = [(-(i["churn_probability"] or -1.0), i["customer_id"]) for i in seen]
                assert keys == sorted(keys)
                assert seen[0]["churn_probability"] == 0.9
                assert all(i["churn_probability"] is None for i in seen[7:])

    async def test_a_bad_cursor_is_400(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        response = await client.get(
            "/v1/customers", params={"cursor": "!!nope"}, headers=tenant["headers"]
        )

        assert response.status_code == 400

    async def test_limit_is_bounded(
        self, client: httpx.AsyncClient, tenant: dict[str, Any]
    ) -> None:
        response = await client.get(
            "/v1/customers", params={"limit": 501}, headers=tenant["headers"]
        )

        assert response.status_code == 422


class TestHealth:
    async def test_ready_when_database_and_producer_are(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")

        assert response.status_code == 200
        assert response.json()["checks"] == {"database": "ok", "broker": "ok"}


# --- profile refresh: profiles age without events ---------------------------------------------
# The refresher recomputes and republishes stale profiles, so a customer who goes quiet is
# rescored (and can raise an alert) instead of keeping the score of their last event forever.


async def _refresh(app: FastAPI, *, days_later: float, limit: int = 100) -> int:
    async with unit_of_work(app.state.session_factory) as session:
        return await EventIngestService(session).refresh_stale_profiles(
            timedelta(hours=1), limit, now=utcnow() + timedelta(days=days_later)
        )


async def _features(client: httpx.AsyncClient, tenant: dict[str, Any], cid: str) -> Any:
    response = await client.get(f"/v1/customers/{cid}/features", headers=tenant["headers"])
    assert response.status_code == 200, response.text
    return response.json()["features"]


async def test_quiet_customers_age_and_deleted_ones_stay_deleted(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    await post_events(client, tenant, [event("quiet", amount=30, days_ago=10)])
    await post_events(client, tenant, [event("gone", amount=30, days_ago=5)])
    await post_events(client, other_tenant, [event("elsewhere", amount=9, days_ago=2)])
    before = await _features(client, tenant, "quiet")
    # 10 days, give or take the time a loaded machine takes between posting and reading
    assert before["days_since_last_order"] == pytest.approx(10, abs=0.05)
    assert (await client.delete("/v1/customers/gone", headers=tenant["headers"])).status_code == 204

    assert await _refresh(app, days_later=30) == 2  # "quiet" and "elsewhere"; not "gone"

    after = await _features(client, tenant, "quiet")
    assert after["days_since_last_order"] == pytest.approx(40, abs=0.01)
    assert after["orders_last_90d"] == 1
    assert after["total_spent"] == before["total_spent"]
    elsewhere = await _features(client, other_tenant, "elsewhere")
    assert elsewhere["days_since_last_order"] == pytest.approx(32, abs=0.01)
    gone = await client.get("/v1/customers/gone", headers=tenant["headers"])
    assert gone.status_code == 404
    # Fresh profiles are left alone.
    assert await _refresh(app, days_later=30) == 0


async def test_a_profile_whose_customer_vanished_is_dropped_not_retried(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    import sqlalchemy as sa

    await post_events(client, tenant, [event("ghost", amount=1, days_ago=3)])
    async with app.state.engine.begin() as conn:  # a delete that left its profile behind
        await conn.execute(sa.text("DELETE FROM customers WHERE customer_id = 'ghost'"))
    assert await _refresh(app, days_later=30) == 0
    async with app.state.engine.connect() as conn:
        left = await conn.execute(
            sa.text("SELECT COUNT(*) FROM customer_features WHERE customer_id = 'ghost'")
        )
        assert left.scalar_one() == 0


async def test_refresh_walks_every_stale_profile_in_batches(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    events = [event(f"c{i}", amount=10, days_ago=3) for i in range(7)]
    await post_events(client, tenant, events)
    refresher = app.state.workers.refresher
    refresher._batch = 3  # three transactions of 3, 3 and 1
    refresher._max_age = timedelta(0)
    assert await refresher.run_once() == 7


async def test_the_worker_republishes_aged_profiles_as_live_updates(
    make_settings: Any,
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
    kafka_bootstrap: str,
) -> None:
    app = create_app(
        make_settings(profile_max_age_hours=1 / 3600, profile_refresh_interval_seconds=0.2),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        posted = await post_events(
            client, tenant, [event("hist", amount=5, days_ago=400)], backfill="true"
        )
        assert posted.status_code == 202

        def live_update(value: bytes, _: list[tuple[str, bytes]]) -> bool:
            envelope = orjson.loads(value)
            return envelope["tenant_id"] == tenant["id"] and not envelope["payload"]["backfill"]

        published = await read_topic(kafka_bootstrap, Topics.CUSTOMER_FEATURES, live_update)
    refreshed = Envelope.from_bytes(published[0])
    assert refreshed.key == "hist"
    assert refreshed.payload["features"]["days_since_last_order"] == pytest.approx(400, abs=0.1)
