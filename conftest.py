"""Fixtures every test tree shares: a real Tansu broker, databases, Redis and a token signer.

* The suite always runs on SQLite and a real Kafka-protocol broker (Tansu, started here).
* ``CHURN_TEST_MYSQL_URL`` (a template with ``{service}``, e.g.
  ``mysql+aiomysql://churn_{service}:churn_{service}@127.0.0.1:3306/churn_{service}``) adds a
  MySQL/MariaDB run of every database-backed test; ``CHURN_TEST_REDIS_URL`` adds Redis.

Helpers (``wait_for``, ``TokenSigner``, ``reset_mysql`` …) live in ``testkit.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import (
    REDIS_URL,
    TokenSigner,
    database_backends,
    mysql_url,
    reset_mysql,
    serve_in_process,
)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Tansu broker on a free loopback port for the whole session.

    Started like the launcher's: a start that loses its port to another process (a parallel
    run) is retried on a new one, and only a listener of this very broker counts as started.
    """
    from churn_cli.launcher import start_tansu

    proc, port = start_tansu("127.0.0.1", start_new_session=False)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=database_backends())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database for the service named by the ``service_name`` fixture."""
    service: str = request.getfixturevalue("service_name")
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / (service + '.db')}"
    url = mysql_url(service)
    await reset_mysql(url)
    return url


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        pytest.skip("CHURN_TEST_REDIS_URL is not set")
    return REDIS_URL


@pytest.fixture(scope="session")
def token_signer() -> TokenSigner:
    return TokenSigner()


@pytest.fixture
def in_process() -> Callable[..., Any]:
    return serve_in_process
