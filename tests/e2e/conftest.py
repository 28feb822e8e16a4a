"""The whole platform as separate processes, started by the same launcher as ``churn up``.

``embedded``: SQLite files, the launcher's own Tansu broker, in-process caches.
``mysql``: one MariaDB database per service, Redis, and the session's Tansu broker; only when
``CHURN_TEST_MYSQL_URL`` and ``CHURN_TEST_REDIS_URL`` are set (``.ci/run`` sets both).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from churn_cli.launcher import SERVICES, Stack, StackConfig

MYSQL_TEMPLATE = os.environ.get("CHURN_TEST_MYSQL_URL", "")
REDIS_URL = os.environ.get("CHURN_TEST_REDIS_URL", "")
MODES = ["embedded"] + (["mysql"] if MYSQL_TEMPLATE and REDIS_URL else [])


@pytest.fixture(scope="module", params=MODES)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp(f"stack-{request.param}")
    if request.param == "embedded":
        config = StackConfig(data_dir=data_dir)
    else:
        from testkit import reset_mysql

        for service in SERVICES:
            asyncio.run(reset_mysql(MYSQL_TEMPLATE.format(service=service)))
        config = StackConfig(
            data_dir=data_dir,
            kafka_bootstrap=request.getfixturevalue("kafka_bootstrap"),
            mysql_url_template=MYSQL_TEMPLATE,
            cache_url=REDIS_URL,
        )
    stack = Stack(config)
    try:
        stack.start()
    except BaseException:
        _dump_logs(data_dir)
        raise
    yield stack
    stack.stop()
    if request.session.testsfailed:
        _dump_logs(data_dir)


def _dump_logs(data_dir: Path) -> None:
    for log in sorted((data_dir / "logs").glob("*.log")):
        print(f"===== {log.name} (last 40 lines) =====")
        print("\n".join(log.read_text(errors="replace").splitlines()[-40:]))


class WebhookReceiver:
    """A real HTTP endpoint on 127.0.0.1 that records what is posted to it."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.received.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                self.send_response(204)
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
