"""The gateway's pooled connections to the services: idle expiry, and one retry on a connection
that broke under a request (a real TCP upstream, so the pool really reuses connections)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn

from churn_shared.http import KEEPALIVE_EXPIRY_SECONDS, service_client

from .conftest import running_gateway


class FlakyUpstream:
    """A bare HTTP/1.1 server on loopback. ``drop="reused"`` answers the first request of each
    connection and closes the connection, unanswered, when a second request arrives on it (an
    upstream closing an idle keep-alive connection as the request goes out); ``drop="all"``
    closes every connection after reading its request."""

    def __init__(self, drop: str) -> None:
        self.drop = drop
        self.requests: list[tuple[str, str]] = []
        self.connections = 0
        self.port = 0

    async def _read_request(self, reader: asyncio.StreamReader) -> tuple[str, str] | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length:
            await reader.readexactly(length)
        self.requests.append((method, path))
        return method, path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        try:
            while await self._read_request(reader) is not None:
                if self.drop == "all" or served >= 1:
                    break
                served += 1
                body = json.dumps({"served": served}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        finally:
            writer.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[FlakyUpstream]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self
            server.close()


@asynccontextmanager
async def gateway_to(
    upstream: FlakyUpstream, token_signer: Any
) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://127.0.0.1:{upstream.port}"
    async with running_gateway(
        None,  # type: ignore[arg-type]  # no fake: the real pooled transport
        token_verifier=token_signer.verifier(),
        customers_url=base,
        prediction_url=base,
    ) as client:
        yield client


def test_idle_connections_expire_before_the_services_close_them() -> None:
    client = service_client()
    # httpx keeps the expiry on its connection pool (there is no public accessor).
    pool_expiry = client._transport._pool._keepalive_expiry  # type: ignore[attr-defined]
    server_timeout = uvicorn.Config(app=None).timeout_keep_alive

    assert pool_expiry == KEEPALIVE_EXPIRY_SECONDS
    assert pool_expiry < server_timeout


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/customers"),
        ("PUT", "/v1/customers/c-1"),
        ("DELETE", "/v1/customers/c-1"),
        # Not idempotent, but the upstream closed the pooled connection without reading it.
        ("POST", "/v1/events"),
        ("PATCH", "/v1/customers/c-1"),
        # Scoring bodies stream through; what went out is sent again in full.
        ("POST", "/v1/predictions/batch"),
        ("POST", "/v2/models/churn/infer"),
        ("POST", "/invocations"),
    ],
)
async def test_a_request_on_a_connection_closed_by_the_upstream_is_sent_again(
    token_signer, bearer, method, path
):
    upstream = FlakyUpstream(drop="reused")
    async with upstream.running(), gateway_to(upstream, token_signer) as client:
        first = await client.request(method, path, headers=bearer(), content=b"{}")
        second = await client.request(method, path, headers=bearer(), content=b"{}")

    assert (first.status_code, second.status_code) == (200, 200), second.text
    # The second went out twice: on the pooled connection (dropped), then on a new one.
    assert upstream.requests == [(method, path)] * 3
    assert upstream.connections == 2


async def test_a_write_that_may_have_reached_the_upstream_is_not_sent_twice(token_signer, bearer):
    upstream = FlakyUpstream(drop="all")
    async with upstream.running(), gateway_to(upstream, token_signer) as client:
        response = await client.post("/v1/events", headers=bearer(), content=b"{}")

    assert response.status_code == 502
    assert response.headers["content-type"].startswith("application/problem+json")
    assert upstream.requests == [("POST", "/v1/events")]


async def test_an_idempotent_request_is_retried_once_only(token_signer, bearer):
    upstream = FlakyUpstream(drop="all")
    async with upstream.running(), gateway_to(upstream, token_signer) as client:
        response = await client.get("/v1/customers", headers=bearer())

    assert response.status_code == 502
    assert upstream.requests == [("GET", "/v1/customers")] * 2


async def test_a_write_whose_connection_could_not_be_opened_is_retried(gateway, upstreams, bearer):
    upstreams.down.add("customers")
    async with gateway(upstreams) as client:
        response = await client.post("/v1/events", headers=bearer(), content=b"{}")

    assert response.status_code == 503
    assert len(upstreams.calls_to("customers")) == 2
