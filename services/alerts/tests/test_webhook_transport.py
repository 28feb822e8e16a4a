"""Send-time checks of webhook destinations: a stub resolver stands in for DNS and a fake
network backend for sockets, so nothing here leaves the process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpcore
import httpx
import pytest

from churn_alerts.url_policy import DestinationRefusedError
from churn_alerts.webhook_transport import PinnedTransport

#: A public address (example.com's); only ever handed to the fake backend below.
PUBLIC = "93.184.216.34"

DNS: dict[str, list[str]] = {
    "evil.example": ["127.0.0.1"],
    "meta.example": ["100.100.100.200"],
    "v6.example": ["::ffff:127.0.0.1"],
    "nat64.example": ["64:ff9b::a9fe:a9fe"],  # 169.254.169.254 behind the NAT64 prefix
    "sixtofour.example": ["2002:a00:1::1"],  # 10.0.0.1 inside a 6to4 address
    "ula.example": ["fd00::1"],
    "linklocal.example": ["fe80::1"],
    "rfc1918.example": ["192.168.1.10"],
    "mixed.example": [PUBLIC, "10.0.0.1"],
    "hooks.example.com": [PUBLIC],
    "dual.example.com": ["2606:2800:220:1:248:1893:25c8:1946", PUBLIC],
}


class StubResolver:
    """Answers from a table and remembers what it was asked."""

    def __init__(self, table: Mapping[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        try:
            return self.table[host]
        except KeyError:
            raise OSError(f"no such host: {host}") from None


class FakeStream(httpcore.AsyncNetworkStream):
    """A connection that records what is written and answers ``204 No Content`` (and closes,
    so every request needs a new connection)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.server_hostname: str | None = None
        self._answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data, self._answer = self._answer[:max_bytes], self._answer[max_bytes:]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    async def aclose(self) -> None:
        return None

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self.server_hostname = server_hostname
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class FakeBackend(httpcore.AsyncNetworkBackend):
    """Records where it was asked to connect; never opens a socket."""

    def __init__(self, unreachable: Iterable[str] = ()) -> None:
        self.connects: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []
        self.unreachable = set(unreachable)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.unreachable:
            raise httpcore.ConnectError(f"{host} unreachable")
        stream = FakeStream()
        self.streams.append(stream)
        return stream

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _client(
    backend: FakeBackend, resolver: StubResolver, *, allow_internal: bool = False
) -> httpx.AsyncClient:
    transport = PinnedTransport(resolver, allow_internal=allow_internal, network_backend=backend)
    return httpx.AsyncClient(transport=transport, trust_env=False)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("evil.example", "evil.example resolves to 127.0.0.1, a loopback address"),
        ("meta.example", "resolves to 100.100.100.200, a shared (carrier-grade NAT) address"),
        ("v6.example", "leads to 127.0.0.1, a loopback address"),
        ("nat64.example", "leads to 169.254.169.254, a link-local address"),
        ("sixtofour.example", "leads to 10.0.0.1, a private-use address"),
        ("ula.example", "resolves to fd00::1, a unique-local address"),
        ("linklocal.example", "resolves to fe80::1, a link-local address"),
        ("rfc1918.example", "resolves to 192.168.1.10, a private-use address"),
        ("mixed.example", "resolves to 10.0.0.1, a private-use address"),
    ],
)
async def test_name_resolving_to_a_special_purpose_address_is_refused_before_connecting(
    host, expected
):
    backend, resolver = FakeBackend(), StubResolver(DNS)
    async with _client(backend, resolver) as client:
        with pytest.raises(DestinationRefusedError, match=re.escape(expected)):
            await client.post(f"https://{host}/hook", content=b"{}")
    assert resolver.asked == [host]
    assert backend.connects == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://127\u30020\u30020\u30021:8080/hook",  # ideographic full stops
        "http://127\uff0e0\uff0e0\uff0e1:8080/hook",  # full-width full stops
        "http://127\uff610\uff610\uff611:8080/hook",  # half-width ideographic full stops
        "http://[::ffff:127.0.0.1]/hook",
        "http://[::1]/hook",
        "http://100.100.100.200/latest/meta-data",
        "http://2130706433/hook",
        "http://0x7f.1/hook",
        "http://localhost/hook",
    ],
)
async def test_literal_and_disguised_internal_hosts_are_refused_without_resolving(url):
    """Channels stored before the policy existed are caught at send time too."""
    backend, resolver = FakeBackend(), StubResolver(DNS)
    async with _client(backend, resolver) as client:
        with pytest.raises(DestinationRefusedError):
            await client.post(url, content=b"{}")
    assert resolver.asked == []
    assert backend.connects == []


async def test_public_name_is_pinned_to_the_checked_address_with_its_name_in_host_and_sni():
    backend, resolver = FakeBackend(), StubResolver(DNS)
    async with _client(backend, resolver) as client:
        response = await client.post("https://hooks.example.com:8443/hook", content=b"{}")
    assert response.status_code == 204
    assert backend.connects == [(PUBLIC, 8443)]
    stream = backend.streams[0]
    assert stream.server_hostname == "hooks.example.com"  # TLS verifies the name, not the IP
    assert stream.written.startswith(b"POST /hook HTTP/1.1\r\n")
    assert b"\r\nHost: hooks.example.com:8443\r\n" in stream.written


async def test_next_checked_address_is_tried_when_the_first_is_unreachable():
    backend = FakeBackend(unreachable={"2606:2800:220:1:248:1893:25c8:1946"})
    resolver = StubResolver(DNS)
    async with _client(backend, resolver) as client:
        response = await client.post("http://dual.example.com/hook", content=b"{}")
    assert response.status_code == 204
    assert backend.connects == [("2606:2800:220:1:248:1893:25c8:1946", 80), (PUBLIC, 80)]


async def test_connections_are_pooled_per_name_not_per_address():
    """Two names on one address never share a (TLS) connection."""
    resolver = StubResolver({"a.example.com": [PUBLIC], "b.example.com": [PUBLIC]})
    backend = FakeBackend()
    async with _client(backend, resolver) as client:
        await client.post("https://a.example.com/hook", content=b"{}")
        await client.post("https://b.example.com/hook", content=b"{}")
    assert [s.server_hostname for s in backend.streams] == ["a.example.com", "b.example.com"]


async def test_each_new_connection_resolves_and_checks_again():
    """A name that rebinds to loopback after a first, public answer is refused then."""
    table = {"rebind.example.com": [PUBLIC]}
    resolver, backend = StubResolver(table), FakeBackend()
    async with _client(backend, resolver) as client:
        first = await client.post("https://rebind.example.com/hook", content=b"{}")
        table["rebind.example.com"] = ["127.0.0.1"]
        with pytest.raises(DestinationRefusedError, match="loopback"):
            await client.post("https://rebind.example.com/hook", content=b"{}")
    assert first.status_code == 204
    assert backend.connects == [(PUBLIC, 443)]


async def test_unresolvable_name_is_a_connect_error():
    backend, resolver = FakeBackend(), StubResolver(DNS)
    async with _client(backend, resolver) as client:
        with pytest.raises(httpx.ConnectError, match=r"cannot resolve nowhere\.example\.com"):
            await client.post("https://nowhere.example.com/hook", content=b"{}")
    assert backend.connects == []


async def test_development_mode_connects_to_loopback_through_the_resolver():
    backend, resolver = FakeBackend(), StubResolver({"localhost": ["127.0.0.1"]})
    async with _client(backend, resolver, allow_internal=True) as client:
        response = await client.post("http://localhost:9000/hook", content=b"{}")
    assert response.status_code == 204
    assert backend.connects == [("127.0.0.1", 9000)]
