"""Reverse proxy: which upstream serves a path (``/v1`` and the inference protocols), and
forwarding one request to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from churn_gateway.exceptions import (
    BadGatewayError,
    RouteNotFoundError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from churn_shared.logging import get_logger
from churn_shared.middleware import STREAMED_SCOPE_KEY

_log = get_logger(__name__)

#: Path prefix → upstream service name. A prefix matches itself and anything below it.
ROUTES: tuple[tuple[str, str], ...] = (
    ("/v1/auth", "auth"),
    ("/v1/users", "auth"),
    ("/v1/api-keys", "auth"),
    ("/v1/events", "customers"),
    ("/v1/customers", "customers"),
    ("/v1/cohorts", "customers"),
    ("/v1/training-sets", "customers"),
    ("/v1/predictions", "prediction"),
    ("/v1/models", "prediction"),
    ("/v1/recommendation-rules", "prediction"),
    ("/v1/alerts", "alerts"),
    ("/v1/alert-rules", "alerts"),
    ("/v1/alert-channels", "alerts"),
    ("/v1/deliveries", "alerts"),
    # The standard inference protocols: Open Inference Protocol V2 and MLflow scoring.
    ("/v2", "prediction"),
    ("/invocations", "prediction"),
    ("/ping", "prediction"),
    ("/health", "prediction"),
    ("/version", "prediction"),
)

#: ``POST`` paths whose bodies (files) stream through to the upstream instead of being read
#: first; they are sent once, never retried (the body cannot be replayed).
STREAMED_UPLOADS: tuple[str, ...] = ("/v1/predictions/jobs", "/v1/customers/import")
#: ``POST`` paths of scoring bodies (batches and the inference protocols' requests, within the
#: gateway's body limit): they stream through to the prediction service as they arrive, never
#: parsed nor gathered here first. What went out is kept until the answer comes
#: (:class:`ReplayableBody`), so that a request that met a stale pooled connection is sent again.
#: A key ending in ``/`` covers the paths below it (``churn_shared.middleware.STREAMED_BODIES``).
STREAMED_SCORING: tuple[str, ...] = ("/v1/predictions/batch", "/v2/models/", "/invocations")

#: Request headers passed on to the upstream (everything else, e.g. ``X-API-Key``, stays at the
#: edge).
FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "authorization",
        "cache-control",
        "content-encoding",
        "content-type",
        "idempotency-key",
        # Open Inference Protocol's binary tensor data: the length of the JSON part.
        "inference-header-content-length",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-unmodified-since",
        "prefer",
        "traceparent",
        "tracestate",
        "user-agent",
    }
)

HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Response headers the gateway sets itself (the server adds date/server, the request-id
#: middleware adds x-request-id).
_OWN_RESPONSE_HEADERS = frozenset({"date", "server", "x-request-id"})

Networks = Sequence[IPv4Network | IPv6Network]

#: Methods whose request may be sent twice (RFC 9110 §9.2.2): retried once on a connection
#: that broke, whatever the upstream may already have seen.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class ConnectionTrace:
    """Whether a request went out on a pooled (reused) connection, from httpcore's trace
    events: a request that was sent without opening a connection reused one."""

    def __init__(self) -> None:
        self.connected = False
        self.sent = False

    async def __call__(self, event: str, info: dict[str, object]) -> None:
        if event.startswith(("connection.connect_tcp.", "connection.connect_unix_socket.")):
            self.connected = True
        elif event.startswith(("http11.send_request_headers.", "http2.send_request_headers.")):
            self.sent = True

    @property
    def reused(self) -> bool:
        return self.sent and not self.connected


def may_retry(method: str, exc: httpx.HTTPError, trace: ConnectionTrace) -> bool:
    """Whether a request that failed with ``exc`` may be sent once more.

    Any request whose connection could not be opened (nothing was sent), any request that met
    a closed pooled connection (the upstream closed it idle and never read the request), and
    an idempotent request on any broken connection. Timeouts are never retried.
    """
    if isinstance(exc, httpx.TimeoutException):
        return False
    if isinstance(exc, httpx.ConnectError):
        return True
    if isinstance(exc, httpx.RemoteProtocolError) and trace.reused:
        return True
    return method in IDEMPOTENT_METHODS and isinstance(
        exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError
    )


def resolve_upstream(path: str) -> str:
    """The name of the service that serves ``path``, or :class:`RouteNotFoundError`."""
    for prefix, upstream in ROUTES:
        if path == prefix or path.startswith(prefix + "/"):
            return upstream
    raise RouteNotFoundError(f"No service serves {path}.")


def _is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def forwarded_chain(
    peer: str | None, headers: Iterable[tuple[str, str]], trusted: Networks
) -> list[str]:
    """The ``X-Forwarded-For`` chain to pass on, ending with the direct peer.

    An incoming chain is only believed when the direct peer is a trusted proxy.
    """
    if peer is None:
        return []
    chain: list[str] = []
    if _is_trusted(peer, trusted):
        for name, value in headers:
            if name.lower() == "x-forwarded-for":
                chain.extend(part.strip() for part in value.split(",") if part.strip())
    chain.append(peer)
    return chain


def client_address(chain: Sequence[str], trusted: Networks) -> str:
    """The first address of the chain (from the right) that is not a trusted proxy."""
    for address in reversed(chain):
        if not _is_trusted(address, trusted):
            return address
    return chain[0] if chain else "unknown"


def _response_headers(
    headers: httpx.Headers, upstream_base: str, public_base: str
) -> list[tuple[str, str]]:
    connection_listed = {
        token.strip().lower() for token in headers.get("connection", "").split(",") if token
    }
    kept: list[tuple[str, str]] = []
    for name, value in headers.multi_items():
        lower = name.lower()
        if lower in HOP_BY_HOP_HEADERS or lower in connection_listed:
            continue
        if lower in _OWN_RESPONSE_HEADERS:
            continue
        if lower == "location" and value.startswith(upstream_base):
            value = public_base + value[len(upstream_base) :]
        kept.append((lower, value))
    return kept


def upstream_request_headers(
    request: Request,
    *,
    request_id: str,
    forwarded_for: Sequence[str],
    authorization: str | None = None,
) -> dict[str, str]:
    headers = {
        name: value for name, value in request.headers.items() if name in FORWARDED_REQUEST_HEADERS
    }
    if authorization is not None:
        headers["authorization"] = authorization
    headers["x-request-id"] = request_id
    if forwarded_for:
        headers["x-forwarded-for"] = ", ".join(forwarded_for)
    headers["x-forwarded-proto"] = request.url.scheme
    host = request.headers.get("host")
    if host:
        headers["x-forwarded-host"] = host
    return headers


class KnownLengthRelay(Response):
    """An upstream answer of known length (``Content-Length``: every JSON answer), passed on
    as it arrives without :class:`StreamingResponse`'s disconnect watcher, a task group and a
    task per response. A client that goes away half-way only has the gateway read the rest of
    a body of known size, and the connection goes back to the pool whole."""

    def __init__(self, upstream: httpx.Response, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.status_code = upstream.status_code
        self.raw_headers = raw_headers
        self.background = None
        self._upstream = upstream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = self._upstream
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in upstream.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await upstream.aclose()


async def _relay(response: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream body as it arrives; the pooled connection is released even if the client
    goes away half-way."""
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()


class ReplayableBody:
    """A request body passed on as it arrives that keeps what it passed on: a second attempt
    sends the kept chunks, then the rest as it arrives. Its memory is the body's (the body
    limit bounds it), released with the request."""

    def __init__(self, source: AsyncIterator[bytes]) -> None:
        self._source = source
        self._taken: list[bytes] = []

    async def attempt(self) -> AsyncIterator[bytes]:
        for chunk in list(self._taken):
            yield chunk
        async for chunk in self._source:
            self._taken.append(chunk)
            yield chunk


def is_streamed_scoring(path: str) -> bool:
    return any(
        path.startswith(key) if key.endswith("/") else path == key for key in STREAMED_SCORING
    )


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    body: bytes | ReplayableBody | AsyncIterator[bytes],
    *,
    upstream: str,
) -> httpx.Response:
    """Send the request; once more on a fresh attempt when :func:`may_retry` allows it (a
    streamed upload: once only)."""
    replayable = isinstance(body, bytes | ReplayableBody)
    for attempt in (1, 2) if replayable else (2,):
        trace = ConnectionTrace()
        content = body.attempt() if isinstance(body, ReplayableBody) else body
        upstream_request = client.build_request(
            method, url, headers=headers, content=content, extensions={"trace": trace}
        )
        try:
            return await client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            if attempt == 2 or not may_retry(method, exc, trace):
                raise
            _log.info(
                "upstream_retry",
                upstream=upstream,
                method=method,
                reused_connection=trace.reused,
                error=repr(exc),
            )
    raise AssertionError("unreachable")  # pragma: no cover


async def forward(
    client: httpx.AsyncClient,
    request: Request,
    *,
    upstream: str,
    base_url: str,
    path: str,
    request_id: str,
    forwarded_for: Sequence[str],
    authorization: str | None = None,
) -> Response:
    """Send ``request`` to ``base_url`` (same method, path, query and body); stream the answer.
    ``authorization`` replaces the caller's header (an API key becomes its access token)."""
    # Forward the path and query byte for byte (an encoded "/" in an id must stay encoded).
    raw_path: bytes = request.scope.get("raw_path") or path.encode()
    query: bytes = request.scope.get("query_string", b"")
    base = httpx.URL(base_url)
    target = base.raw_path.rstrip(b"/") + raw_path + (b"?" + query if query else b"")
    url = base.copy_with(raw_path=target)
    headers = upstream_request_headers(
        request, request_id=request_id, forwarded_for=forwarded_for, authorization=authorization
    )
    body: bytes | ReplayableBody | AsyncIterator[bytes]
    if request.scope.get(STREAMED_SCOPE_KEY):
        body = request.stream()
        if is_streamed_scoring(path):
            body = ReplayableBody(body)
        length = request.headers.get("content-length")
        if length is not None:
            headers["content-length"] = length
    else:
        body = await request.body()
    try:
        response = await _send(client, request.method, url, headers, body, upstream=upstream)
    except httpx.TimeoutException as exc:
        _log.warning("upstream_timeout", upstream=upstream, path=request.url.path)
        raise UpstreamTimeoutError(f"The {upstream} service did not answer in time.") from exc
    except httpx.ConnectError as exc:
        _log.warning("upstream_unreachable", upstream=upstream, error=str(exc))
        raise UpstreamUnavailableError(f"The {upstream} service is not reachable.") from exc
    except httpx.HTTPError as exc:
        _log.warning("upstream_failed", upstream=upstream, error=repr(exc))
        raise BadGatewayError(f"The {upstream} service failed to answer.") from exc
    public_base = str(request.base_url).rstrip("/")
    # Raw headers keep repeated ones (several Set-Cookie, Link…) and the upstream's framing.
    raw_headers = [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in _response_headers(response.headers, base_url, public_base)
    ]
    if "content-length" in response.headers:
        return KnownLengthRelay(response, raw_headers)
    # A body of unknown length (a stream of job results…): stop reading it when the client
    # goes away.
    proxied = StreamingResponse(_relay(response), status_code=response.status_code)
    proxied.raw_headers = raw_headers
    return proxied
