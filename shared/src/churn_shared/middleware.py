"""Pure ASGI middleware shared by every service and the gateway."""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from churn_shared.db import is_transient
from churn_shared.errors import PayloadTooLargeError, ProblemError, problem_response
from churn_shared.logging import REQUEST_ID_HEADER, get_logger, request_id_var

_log = get_logger("churn.access")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Adopt the caller's ``X-Request-ID`` (or make one), expose it to logs and echo it back.

    The gateway is the edge: with ``trust_incoming=False`` it always mints a fresh id, so
    clients cannot inject ids into the services' logs.
    """

    def __init__(self, app: ASGIApp, *, trust_incoming: bool = True) -> None:
        self.app = app
        self.trust_incoming = trust_incoming

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: str | None = None
        if self.trust_incoming:
            for name, value in scope["headers"]:
                if name == b"x-request-id":
                    candidate = value.decode("latin-1")
                    if _VALID_REQUEST_ID.match(candidate):
                        rid = candidate
                    break
        rid = rid or new_request_id()
        scope.setdefault("state", {})["request_id"] = rid
        if not self.trust_incoming:
            headers = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
            headers.append((b"x-request-id", rid.encode()))
            scope["headers"] = headers
        token = request_id_var.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            if path not in ("/livez", "/readyz", "/metrics"):
                _log.info(
                    "request",
                    method=scope.get("method"),
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            request_id_var.reset(token)


#: ``app.state`` attribute naming the ``POST`` paths whose bodies are streamed, not buffered:
#: ``{path: max_bytes}`` (file uploads; at the gateway also the scoring bodies it passes on).
#: A key ending in ``/`` names every path below it. Set it before the app serves.
STREAMED_BODIES = "streamed_bodies"
#: ``app.state`` attribute holding ``(path, error) -> Response | None``: how an error the
#: middleware itself answers (a body over the limit) is shown on a path that speaks another
#: error form than problem+json (the inference protocols); ``None`` keeps the problem.
EDGE_ERRORS = "edge_errors"

EdgeErrors = Callable[[str, ProblemError], Response | None]

#: Scope key set on a request whose body is streamed: it cannot be replayed.
STREAMED_SCOPE_KEY = "churn.streamed_body"


def streamed_body_limit(scope: Scope) -> int | None:
    """The byte limit of a streamed upload to ``scope``'s path, or ``None`` (buffered)."""
    if scope.get("method") != "POST":
        return None
    app = scope.get("app")
    limits = getattr(getattr(app, "state", None), STREAMED_BODIES, None)
    if not limits:
        return None
    path = scope.get("path", "")
    limit = limits.get(path)
    if limit is None:
        for key, value in limits.items():
            if key.endswith("/") and path.startswith(key):
                limit = value
                break
    return int(limit) if limit is not None else None


class BodySizeLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413 before the application reads them.

    A path listed in the app's :data:`STREAMED_BODIES` (a file upload) is not buffered: its
    body reaches the application as it arrives, counted against that path's own limit, and a
    body that passes it raises :class:`PayloadTooLargeError` (413) from ``receive``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        streamed = streamed_body_limit(scope)
        limit = self.max_bytes if streamed is None else streamed
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._reject(scope, receive, send, limit)
                    return
        if streamed is not None:
            scope[STREAMED_SCOPE_KEY] = True
            await self.app(scope, _counted(receive, streamed), send)
            return
        # Read the body up to the limit before the application sees it, so an oversized
        # streamed body is refused cleanly instead of failing half-way through a handler.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._reject(scope, receive, send, self.max_bytes)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"The request body exceeds the limit of {limit} bytes."
        path = scope.get("path", "")
        render: EdgeErrors | None = getattr(
            getattr(scope.get("app"), "state", None), EDGE_ERRORS, None
        )
        response = render(path, PayloadTooLargeError(detail)) if render is not None else None
        if response is None:
            response = problem_response(413, "Payload Too Large", detail, "payload-too-large", path)
        await response(scope, receive, send)


def _counted(receive: Receive, max_bytes: int) -> Receive:
    """``receive`` that raises 413 once the body passes ``max_bytes``."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise PayloadTooLargeError(
                    f"The request body exceeds the limit of {max_bytes} bytes."
                )
        return message

    return counted


class MetricsMiddleware:
    """Count requests and time them by route template, into the app's own registry."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry, service: str) -> None:
        self.app = app
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests",
            ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency",
            ["service", "method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.requests.labels(self.service, method, template, str(status)).inc()
            self.latency.labels(self.service, method, template).observe(
                time.perf_counter() - started
            )


class ErrorBoundaryMiddleware:
    """The innermost layer of every app: what an error that no handler claimed turns into.

    * A transaction that hit a lock conflict (:func:`churn_shared.db.is_transient`: a deadlock
      or lock-wait timeout on MySQL, a busy SQLite) is rolled back by the unit of work; the
      whole request then runs again, up to ``attempts`` times with jittered exponential
      backoff. When the attempts run out the client gets ``503`` with ``Retry-After``, never a
      500: nothing was written, and trying again later is the right answer.
    * Any other unhandled error is logged and rendered as a 500 problem, and *not* re-raised:
      re-raising makes the server close the connection, and a proxy that pooled it (the
      gateway) then fails somebody else's request on it.

    A request can only be replayed before its response has started (the unit of work commits
    before the response, so a failing transaction always fails early); its body is kept for
    the replay (it is bounded by :class:`BodySizeLimitMiddleware`, which sits outside).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        # Six attempts, 25 ms doubling (+ jitter, ≤ 1.6 s in all): on a loaded 2-core host four
        # attempts within 0.3 s once all lost the same MariaDB conflict in CI.
        attempts: int = 6,
        base_delay_seconds: float = 0.025,
        retry_after_seconds: int = 1,
    ) -> None:
        self.app = app
        self.attempts = max(1, attempts)
        self.base_delay = base_delay_seconds
        self.retry_after = retry_after_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get(STREAMED_SCOPE_KEY):
            # A streamed upload cannot be replayed: one attempt, errors rendered the same way.
            await self._once(scope, receive, send)
            return
        recorded: list[Message] = []
        body_complete = False

        async def receive_and_record() -> Message:
            nonlocal body_complete
            message = await receive()
            if message["type"] == "http.request" and not body_complete:
                recorded.append(message)
                body_complete = not message.get("more_body", False)
            return message

        for attempt in range(1, self.attempts + 1):
            started = False
            position = 0

            async def attempt_receive() -> Message:
                nonlocal position
                if position < len(recorded):
                    position += 1
                    return recorded[position - 1]
                message = await receive_and_record()
                position = len(recorded)
                return message

            async def attempt_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            try:
                await self.app(scope, attempt_receive, attempt_send)
                return
            except Exception as exc:
                if started:
                    raise
                transient = is_transient(exc)
                if transient and attempt < self.attempts:
                    delay = self.base_delay * 2 ** (attempt - 1)
                    _log.warning(
                        "transaction_conflict_retried",
                        path=scope.get("path"),
                        attempt=attempt,
                        error=type(exc).__name__,
                    )
                    await asyncio.sleep(delay + random.uniform(0, delay))
                    continue
                response = self._render(scope, exc, transient)
                await response(scope, attempt_receive, send)
                return

    async def _once(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            if started:
                raise
            await self._render(scope, exc, is_transient(exc))(scope, receive, send)

    def _render(self, scope: Scope, exc: Exception, transient: bool) -> Response:
        path = scope.get("path")
        if transient:
            _log.warning("transaction_conflict_gave_up", path=path, attempts=self.attempts)
            return problem_response(
                503,
                "Service Unavailable",
                "The request kept conflicting with concurrent writes and was not applied; "
                "nothing was stored. Retry it.",
                "transaction-conflict",
                path,
                headers={"Retry-After": str(self.retry_after)},
            )
        _log.error("unhandled_error", path=path, exc_info=exc)
        return problem_response(
            500,
            "Internal Server Error",
            "An unexpected error occurred.",
            "internal",
            path,
        )
