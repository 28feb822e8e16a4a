"""Fixtures of the alerts service's tests: settings on a fresh database and the session's real
broker, a token per tenant, and a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.config import Settings
from churn_alerts.worker import MIGRATIONS
from churn_shared.db import create_engine, create_session_factory, run_migrations


@pytest.fixture
def service_name() -> str:
    return "alerts"


@pytest.fixture
def make_settings(database_url: str, kafka_bootstrap: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "kafka_bootstrap_servers": kafka_bootstrap,
            "consumer_group": f"alerts-test-{uuid.uuid4().hex[:8]}",
            "dev_mode": True,
            "log_json": False,
            "delivery_backoff_base_seconds": 0.1,
            "delivery_poll_interval_seconds": 0.05,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def session_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the migrated test database (no app, no broker)."""
    engine = create_engine(database_url)
    await run_migrations(engine, MIGRATIONS)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


class Clock:
    """A clock the test moves: pass ``clock`` where the code takes a ``Callable[[], datetime]``."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> Clock:
    """Starts at 2026-12-01 12:00 UTC; set ``clock.now`` or ``clock.advance(minutes=...)``."""
    return Clock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def tenant(token_signer: Any) -> dict[str, Any]:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    token = token_signer.issue(tenant_id, role="owner")
    return {"id": tenant_id, "headers": {"Authorization": f"Bearer {token}"}}


class WebhookReceiver:
    """A real HTTP endpoint on 127.0.0.1; answers 500 to the first ``fail_first`` requests, and
    each answer ``delay`` seconds after the request was read (and recorded)."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0) -> None:
        self.received: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "raw": body,
                        "body": json.loads(body),
                    }
                )
                failing = len(receiver.received) <= receiver.fail_first
                time.sleep(receiver.delay)
                self.send_response(500 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/churn"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def flaky_webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(fail_first=2) as receiver:
        yield receiver


@pytest.fixture
def broken_webhook_receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(fail_first=10**6) as receiver:
        yield receiver


@pytest.fixture
def slow_webhook_receiver() -> Iterator[Callable[[float], WebhookReceiver]]:
    """Start receivers that answer ``delay`` seconds after reading a request."""
    started: list[WebhookReceiver] = []

    def start(delay: float) -> WebhookReceiver:
        receiver = WebhookReceiver(delay=delay).__enter__()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.__exit__(None, None, None)
