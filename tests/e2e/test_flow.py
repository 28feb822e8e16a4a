"""Register → log in → live socket → events → features → score → alert, through the gateway."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import socketio
from aiokafka import AIOKafkaProducer

from churn_cli.simulator import at_risk_story, loyal_story
from churn_shared.contracts import CustomerEventReceivedV1, Topics
from churn_shared.kafka import Envelope
from testkit import read_topic, wait_for

pytestmark = pytest.mark.e2e


async def _tenant(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    email = f"{name}-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    registered = await client.post(
        "/v1/auth/register", json={"tenant_name": name, "email": email, "password": password}
    )
    assert registered.status_code == 201, registered.text
    login = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    tokens = login.json()
    assert tokens["token_type"] == "bearer"
    return {
        **registered.json(),
        **tokens,
        "headers": {"Authorization": f"Bearer {tokens['access_token']}"},
    }


async def _socket(gateway: str, token: str) -> tuple[socketio.AsyncClient, dict[str, list[Any]]]:
    received: dict[str, list[Any]] = {"churn_alert": [], "score_update": []}
    sio = socketio.AsyncClient(reconnection=False)

    @sio.on("churn_alert")
    async def on_alert(data: Any) -> None:
        received["churn_alert"].append(data)

    @sio.on("score_update")
    async def on_score(data: Any) -> None:
        received["score_update"].append(data)

    await sio.connect(
        gateway,
        auth={"token": token},
        transports=["websocket"],
        socketio_path="/socket.io",
        wait_timeout=10,
    )
    return sio, received


async def test_high_risk_events_raise_alert_on_socket_and_webhook(stack, webhook_receiver):
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        alice = await _tenant(client, "alice-shop")
        bob = await _tenant(client, "bob-shop")
        channel = await client.post(
            "/v1/alert-channels",
            headers=alice["headers"],
            json={"kind": "webhook", "url": webhook_receiver.url},
        )
        assert channel.status_code == 201, channel.text

        alice_sio, alice_feed = await _socket(stack.gateway_url, alice["access_token"])
        bob_sio, bob_feed = await _socket(stack.gateway_url, bob["access_token"])
        try:
            events = at_risk_story("risky-1") + loyal_story("loyal-1")
            posted = await client.post(
                "/v1/events", headers=alice["headers"], json={"events": events}
            )
            assert posted.status_code == 202, posted.text
            assert posted.json() == {"accepted": len(events), "duplicates": 0}
            request_id = posted.headers["x-request-id"]

            alerts = await wait_for(
                lambda: [a for a in alice_feed["churn_alert"] if a["customer_id"] == "risky-1"],
                timeout=60,
            )
            assert alerts[0]["kind"] == "high_risk"
            assert alerts[0]["churn_probability"] >= 0.7
            assert not [a for a in alice_feed["churn_alert"] if a["customer_id"] == "loyal-1"]

            hooks = await wait_for(
                lambda: [
                    h
                    for h in webhook_receiver.received
                    if h["body"].get("customer_id") == "risky-1"
                ],
                timeout=30,
            )
            assert hooks[0]["headers"].get("X-Churn-Signature", "").startswith("t=")
            assert any(s["customer_id"] == "loyal-1" for s in alice_feed["score_update"])

            listed = await client.get("/v1/alerts", headers=alice["headers"])
            assert listed.status_code == 200
            assert [a["customer_id"] for a in listed.json()["items"]] == ["risky-1"]

            # The customers service applies scores from its own consumer of the score topic,
            # independently of the alerts service and the feed: it catches up, it is not there
            # the moment the alert is.
            async def ranked() -> list[str]:
                page = await client.get(
                    "/v1/customers",
                    headers=alice["headers"],
                    params={"sort": "-churn_probability"},
                )
                assert page.status_code == 200, page.text
                return [c["customer_id"] for c in page.json()["items"]][:2]

            async def ranked_by_risk() -> bool:
                return await ranked() == ["risky-1", "loyal-1"]

            try:
                await wait_for(ranked_by_risk, timeout=30, interval=0.2)
            except TimeoutError:
                pytest.fail(f"customers ranked by risk: {await ranked()}")

            # Tenant isolation: bob sees nothing of alice's, on the socket or over HTTP.
            await asyncio.sleep(0.5)
            assert bob_feed == {"churn_alert": [], "score_update": []}
            assert (await client.get("/v1/alerts", headers=bob["headers"])).json()["items"] == []
            foreign = await client.get("/v1/customers/risky-1", headers=bob["headers"])
            assert foreign.status_code == 404

            # The gateway's request id travelled through every hop into every service's logs.
            def logged_everywhere() -> bool:
                return all(
                    request_id in (stack.log_dir / f"{svc}.log").read_text(errors="replace")
                    for svc in ("customers", "prediction", "alerts")
                )

            await wait_for(logged_everywhere, timeout=10)

            # Every hop from the events to the alert on the feed is counted on /metrics.
            hops = {
                "customers": 'churn_outbox_publish_seconds_count{service="customers",'
                'topic="customer.features.v1"}',
                "prediction": 'churn_event_hop_seconds_count{consumer="prediction-scorer",'
                'service="prediction",topic="customer.features.v1"}',
                "alerts": 'churn_event_hop_seconds_count{consumer="alerts-scores",'
                'service="alerts",topic="churn.scores.v1"}',
                "gateway": 'churn_event_hop_seconds_count{consumer="gateway-live-feed",'
                'service="gateway",topic="churn.alerts.v1"}',
            }
            for component, series in hops.items():
                url = stack.gateway_url if component == "gateway" else stack.url(component)
                text = (await client.get(f"{url}/metrics")).text
                counted = [line for line in text.splitlines() if line.startswith(series)]
                assert counted, f"{series} missing from {component}'s /metrics"
                assert float(counted[0].split()[-1]) >= 1

            # Sending the same events again changes nothing and raises no second alert.
            again = await client.post(
                "/v1/events", headers=alice["headers"], json={"events": events}
            )
            assert again.json() == {"accepted": 0, "duplicates": len(events)}
            await asyncio.sleep(1.0)
            listed = await client.get("/v1/alerts", headers=alice["headers"])
            assert len(listed.json()["items"]) == 1
        finally:
            await alice_sio.disconnect()
            await bob_sio.disconnect()


async def test_predictions_and_model_through_gateway(stack):
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        carol = await _tenant(client, "carol-shop")
        current = await client.get("/v1/models/current", headers=carol["headers"])
        assert current.status_code == 200, current.text
        features = current.json()["features"]
        row = dict.fromkeys(features, 1.0)
        batch = await client.post(
            "/v1/predictions/batch", headers=carol["headers"], json={"rows": [row, row]}
        )
        assert batch.status_code == 200, batch.text
        body = batch.json()
        assert body["model_version"] == current.json()["version"]
        assert len(body["predictions"]) == 2
        assert 0.0 <= body["predictions"][0]["churn_probability"] <= 1.0
        assert body["predictions"][0] == body["predictions"][1]


async def test_bad_input_gets_problem_details(stack):
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        dave = await _tenant(client, "dave-shop")
        no_token = await client.get("/v1/customers")
        assert no_token.status_code == 401
        assert no_token.headers["content-type"].startswith("application/problem+json")

        bad_token = await client.get(
            "/v1/customers", headers={"Authorization": "Bearer abc.def.ghi"}
        )
        assert bad_token.status_code == 401

        malformed = await client.post(
            "/v1/events",
            headers={**dave["headers"], "Content-Type": "application/json"},
            content=b'{"events": [',
        )
        assert malformed.status_code == 400
        assert malformed.headers["content-type"].startswith("application/problem+json")

        unknown_type = await client.post(
            "/v1/events",
            headers=dave["headers"],
            json={
                "events": [
                    {
                        "event_id": "e1",
                        "customer_id": "c1",
                        "type": "teleported",
                        "occurred_at": "2026-01-01T00:00:00Z",
                        "properties": {},
                    }
                ]
            },
        )
        assert unknown_type.status_code == 422
        assert (await client.get("/v1/customers/c1", headers=dave["headers"])).status_code == 404

        too_many = await client.post(
            "/v1/events",
            headers=dave["headers"],
            json={
                "events": [
                    {
                        "event_id": f"e{i}",
                        "customer_id": "c1",
                        "type": "login",
                        "occurred_at": "2026-01-01T00:00:00Z",
                        "properties": {},
                    }
                    for i in range(10_001)
                ]
            },
        )
        assert too_many.status_code == 413

        unknown_route = await client.get("/v1/nothing-here", headers=dave["headers"])
        assert unknown_route.status_code == 404


async def test_kafka_events_are_applied_for_real_tenants_and_dead_lettered_for_others(stack):
    """A producer writes straight to ``customer.events.v1``: the customers service asks auth
    whether each event's tenant exists, applies a registered tenant's events and dead-letters
    the others with the reason."""
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        erin = await _tenant(client, "erin-shop")
        stranger = str(uuid.uuid4())

        def envelope(tenant_id: str, customer_id: str) -> Envelope:
            return Envelope.wrap(
                tenant_id=tenant_id,
                producer="e2e",
                key=customer_id,
                payload=CustomerEventReceivedV1(
                    event_id=uuid.uuid4().hex,
                    customer_id=customer_id,
                    type="login",
                    occurred_at=datetime.now(UTC),
                    properties={},
                ),
            )

        real, lost = envelope(erin["tenant_id"], "kafka-c1"), envelope(stranger, "kafka-c2")
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        try:
            for message in (lost, real):
                await producer.send_and_wait(
                    Topics.CUSTOMER_EVENTS, message.to_bytes(), key=message.key.encode()
                )
        finally:
            await producer.stop()

        async def applied() -> bool:
            found = await client.get("/v1/customers/kafka-c1", headers=erin["headers"])
            return found.status_code == 200

        await wait_for(applied, 60)

        def dead_lettered(value: bytes, headers: list[tuple[str, bytes]]) -> bool:
            return lost.event_id.encode() in value and dict(headers).get("x-error") == (
                f"unknown tenant {stranger!r}".encode()
            )

        assert await read_topic(
            stack.kafka_bootstrap, Topics.dead_letter(Topics.CUSTOMER_EVENTS), dead_lettered, 60
        )
