"""The HTTP transport of webhook deliveries: resolve, check, then connect to what was checked.

Checking a channel's URL when it is created is not enough: its name can resolve to another
address by the time a delivery is sent (DNS rebinding), and names such as those in /etc/hosts
are only known to the resolver. So every connection goes through :class:`PinnedNetworkBackend`,
which, at connect time,

1. normalises the host and applies the name rules of :mod:`churn_alerts.url_policy`;
2. resolves it with an injectable async :data:`Resolver` (the system's ``getaddrinfo`` by
   default, a stub in tests), refusing the connection if *any* address is special-purpose;
3. opens the TCP connection to one of those checked addresses, never to the name.

Pinning happens below HTTP, so nothing above changes: the request URL keeps the host name, the
``Host`` header is the name, and TLS is started by httpcore on the pinned socket with
``server_hostname`` (SNI and certificate verification) set to the name. Connections are pooled
by the URL's origin (scheme, name, port), never by address, so a TLS connection verified for
one name is not reused for another name that happens to share its address.

:class:`PinnedTransport` is httpx's own ``AsyncHTTPTransport`` (its request mapping, exception
mapping and response streaming) over an httpcore pool using that backend. Proxies from the
environment are ignored (``trust_env=False``): a proxy would resolve the name itself, after our
check. A refusal raises :class:`~churn_alerts.url_policy.DestinationRefusedError`, which is not
an ``httpx`` error, so that the delivery worker can tell it from a network failure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence

import httpcore
import httpx

from churn_alerts.url_policy import DestinationRefusedError, IPAddress, check_address, check_host

#: ``await resolver(host, port)`` → the addresses ``host`` resolves to, as text.
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for ``host`` (in the loop's thread pool, so the event
    loop never blocks on DNS), in its order, without duplicates."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the URL policy accepts, resolved and checked at connect time.

    ``allow_internal`` (development mode) skips the checks but still connects to the resolved
    address. ``inner`` makes the actual connection (anyio's backend, or a fake in tests).
    """

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        *,
        allow_internal: bool,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._resolver = resolver
        self._allow_internal = allow_internal
        self._inner = inner or httpcore.AnyIOBackend()

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The checked addresses to connect to for ``host``; raises
        :class:`DestinationRefusedError` when the policy refuses the host or any address."""
        name = check_host(host, allow_internal=self._allow_internal)
        literal = _parse_address(name)
        if literal is not None:
            found = [literal]
        else:
            try:
                resolved = await self._resolver(name, port)
            except OSError as exc:
                raise httpcore.ConnectError(f"cannot resolve {name}: {exc}") from exc
            found = []
            for text in resolved:
                address = _parse_address(text)
                if address is None:
                    raise DestinationRefusedError(f"{name} resolved to {text!r}, not an address")
                found.append(address)
            if not found:
                raise httpcore.ConnectError(f"{name} resolves to no address")
        if not self._allow_internal:
            for address in found:
                check_address(address, host=name)
        return found

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self.addresses(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host} resolves to no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefusedError("webhooks are not sent over Unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through :class:`PinnedNetworkBackend`.

    httpx does not take a network backend as a parameter, so the connection pool it builds is
    replaced by an equivalent one with the pinning backend. If a new httpx no longer keeps the
    pool where this expects it, construction fails rather than silently sending unpinned.
    """

    def __init__(
        self,
        resolver: Resolver = system_resolver,
        *,
        allow_internal: bool,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        limits: httpx.Limits | None = None,
    ) -> None:
        super().__init__(trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.AsyncConnectionPool):
            raise RuntimeError("httpx.AsyncHTTPTransport changed: cannot pin webhook connections")
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        self.backend = PinnedNetworkBackend(
            resolver, allow_internal=allow_internal, inner=network_backend
        )
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )


def _parse_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
