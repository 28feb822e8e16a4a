"""Who may hold a live-feed socket, and for how long: ``reauth`` with a fresh access token keeps
it open, ``session_expired`` comes before the server closes it, API keys that may read open it.

A real uvicorn server and real Socket.IO clients; no broker (messages are emitted directly).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import socketio
from fastapi import FastAPI

from churn_gateway.main import create_app
from churn_gateway.realtime import broadcast
from churn_gateway.schemas import LiveMessage
from testkit import wait_for

from .conftest import UpstreamRouter, gateway_settings
from .test_api_keys import FakeAuth
from .test_live_feed import FeedClient, uvicorn_server


@pytest.fixture
async def feed(token_signer) -> AsyncIterator[tuple[str, FastAPI]]:
    upstreams = UpstreamRouter({"auth": FakeAuth(token_signer).app})
    app = create_app(
        gateway_settings(), token_verifier=token_signer.verifier(), upstream_transport=upstreams
    )
    async with uvicorn_server(app) as url:
        yield url, app


def _session_expired(client: FeedClient) -> list[Any]:
    seen: list[Any] = []

    async def on_expired(data: Any) -> None:
        seen.append(data)

    client.sio.on("session_expired", on_expired)
    return seen


async def test_reauth_with_a_fresh_token_keeps_the_socket_open(feed, token_signer):
    url, _ = feed
    client = FeedClient()
    short = token_signer.issue("t1", subject="user-1", ttl=timedelta(seconds=2))
    await client.connect(url, {"token": short})

    fresh = token_signer.issue("t1", subject="user-1", ttl=timedelta(minutes=5))
    ack = await client.sio.call("reauth", {"token": fresh}, timeout=5)
    await asyncio.sleep(3)

    assert ack["ok"] is True
    assert isinstance(ack["expires_at"], int)
    assert client.sio.connected
    await client.sio.disconnect()


async def test_without_reauth_the_client_is_told_before_the_socket_closes(feed, token_signer):
    url, _ = feed
    client = FeedClient()
    expired = _session_expired(client)
    await client.connect(url, {"token": token_signer.issue("t1", ttl=timedelta(seconds=1))})

    await wait_for(lambda: not client.sio.connected, timeout=10)

    assert expired == [{"reason": "token_expired"}]


@pytest.mark.parametrize(
    ("tenant", "subject", "error"),
    [("t2", None, "different_identity"), ("t1", "someone-else", "different_identity")],
)
async def test_reauth_as_someone_else_is_refused(feed, token_signer, tenant, subject, error):
    url, _ = feed
    client = FeedClient()
    await client.connect(url, {"token": token_signer.issue("t1", subject="user-1")})
    other = token_signer.issue(tenant, subject=subject or "user-1")

    ack = await client.sio.call("reauth", {"token": other}, timeout=5)
    garbage = await client.sio.call("reauth", {"token": "abc.def.ghi"}, timeout=5)
    shapeless = await client.sio.call("reauth", "nope", timeout=5)

    assert ack == {"ok": False, "error": error}
    assert garbage == {"ok": False, "error": "unauthorized"}
    assert shapeless == {"ok": False, "error": "unauthorized"}
    assert client.sio.connected
    await client.sio.disconnect()


async def test_an_api_key_that_may_read_opens_the_feed_of_its_tenant(feed):
    url, app = feed
    client = FeedClient()
    await client.connect(url, {"token": "ck_read"})

    await broadcast(
        app.state.sio,
        LiveMessage(event="score_update", tenant_id="tenant-k", payload={"customer_id": "c1"}),
    )
    received = await wait_for(lambda: client.received["score_update"], timeout=10)

    assert received == [{"customer_id": "c1"}]
    await client.sio.disconnect()


@pytest.mark.parametrize("key", ["ck_events", "ck_unknown"])
async def test_an_api_key_that_may_not_read_is_refused(feed, key):
    url, _ = feed
    client = FeedClient()

    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, {"token": key})
    assert not client.sio.connected
