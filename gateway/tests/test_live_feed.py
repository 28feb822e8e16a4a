"""The Socket.IO live feed over a real uvicorn server, a real Tansu broker and real clients."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import socketio
import uvicorn
from fastapi import FastAPI

from churn_gateway.main import create_app
from churn_shared.contracts import ChurnAlertRaisedV1, ChurnScoreComputedV1, Topics
from churn_shared.kafka import Envelope, EventPublisher
from testkit import free_port, wait_for

from .conftest import UpstreamRouter, echo_app, gateway_settings


@asynccontextmanager
async def uvicorn_server(app: FastAPI) -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(400):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)


class FeedClient:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: dict[str, list[Any]] = {"churn_alert": [], "score_update": []}
        for event in self.received:
            self.sio.on(event, self._collector(event))

    def _collector(self, event: str) -> Any:
        async def collect(data: Any) -> None:
            self.received[event].append(data)

        return collect

    async def connect(self, url: str, auth: Any, transports: list[str] | None = None) -> None:
        await self.sio.connect(
            url, auth=auth, transports=transports, socketio_path="/socket.io", wait_timeout=10
        )


@pytest.fixture(scope="module")
async def live_gateway(kafka_bootstrap, token_signer) -> AsyncIterator[str]:
    """One gateway for the module: JWKS readiness answered by the fake auth app."""
    settings = gateway_settings(kafka_bootstrap_servers=kafka_bootstrap, run_workers=True)
    upstreams = UpstreamRouter({"auth": echo_app("auth", token_signer.jwks())})
    app = create_app(settings, token_verifier=token_signer.verifier(), upstream_transport=upstreams)
    async with uvicorn_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(600):
                ready = await client.get("/readyz")
                if ready.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert ready.status_code == 200, ready.text
        yield url


@pytest.fixture
async def publisher(kafka_bootstrap) -> AsyncIterator[EventPublisher]:
    pub = EventPublisher(kafka_bootstrap, client_id="gateway-test-producer")
    await pub.start()
    yield pub
    await pub.stop()


def _alert(customer_id: str) -> ChurnAlertRaisedV1:
    return ChurnAlertRaisedV1(
        alert_id=uuid.uuid4().hex,
        customer_id=customer_id,
        kind="high_risk",
        churn_probability=0.91,
        previous_probability=0.35,
        risk_level="high",
        model_version="v-test",
        created_at=datetime.now(UTC),
    )


def _score(customer_id: str, *, backfill: bool) -> ChurnScoreComputedV1:
    return ChurnScoreComputedV1(
        customer_id=customer_id,
        churn_probability=0.42,
        risk_level="medium",
        model_version="v-test",
        scored_at=datetime.now(UTC),
        backfill=backfill,
    )


async def test_alerts_and_scores_reach_only_their_tenant(live_gateway, publisher, token_signer):
    alice_tenant, bob_tenant = f"alice-{uuid.uuid4().hex}", f"bob-{uuid.uuid4().hex}"
    alice, bob = FeedClient(), FeedClient()
    await alice.connect(live_gateway, {"token": token_signer.issue(alice_tenant)}, ["websocket"])
    await bob.connect(live_gateway, {"token": token_signer.issue(bob_tenant)})  # polling first
    try:
        alert = _alert("risky-1")
        await publisher.publish(
            Topics.CHURN_SCORES,
            [
                Envelope.wrap(
                    tenant_id=alice_tenant,
                    producer="test",
                    payload=_score("risky-1", backfill=True),
                    key="risky-1",
                ),
                Envelope.wrap(
                    tenant_id=alice_tenant,
                    producer="test",
                    payload=_score("risky-1", backfill=False),
                    key="risky-1",
                ),
            ],
        )
        await publisher.publish(
            Topics.CHURN_ALERTS,
            [
                Envelope.wrap(
                    tenant_id=alice_tenant,
                    producer="test",
                    payload=alert,
                    key="risky-1",
                )
            ],
        )
        alerts = await wait_for(lambda: alice.received["churn_alert"], timeout=20)
        assert alerts == [{"id": alert.alert_id, "status": "open", **alert.model_dump(mode="json")}]
        scores = await wait_for(lambda: alice.received["score_update"], timeout=20)
        assert len(scores) == 1
        assert scores[0]["backfill"] is False
        await asyncio.sleep(0.5)
        assert bob.received == {"churn_alert": [], "score_update": []}
    finally:
        await alice.sio.disconnect()
        await bob.sio.disconnect()


@pytest.mark.parametrize(
    "auth",
    [None, {}, {"token": "abc.def.ghi"}, {"token": "expired"}, "not-a-dict"],
    ids=["missing", "empty", "garbage", "expired", "wrong-shape"],
)
async def test_connection_without_a_valid_token_is_refused(live_gateway, token_signer, auth):
    if auth == {"token": "expired"}:
        from datetime import timedelta

        auth = {"token": token_signer.issue("t", ttl=timedelta(minutes=-5))}
    client = FeedClient()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(live_gateway, auth, ["websocket"])
    assert not client.sio.connected


async def test_a_socket_is_closed_when_its_token_expires(live_gateway, token_signer):
    from datetime import timedelta

    client = FeedClient()
    await client.connect(
        live_gateway, {"token": token_signer.issue("t", ttl=timedelta(seconds=2))}, ["websocket"]
    )
    assert client.sio.connected
    await wait_for(lambda: not client.sio.connected, timeout=10)
