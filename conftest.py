"""Fixtures every test tree shares: a real Tansu broker, databases, Redis and a token signer.

* The suite always runs on SQLite and a real Kafka-protocol broker (Tansu, started here, one
  per test module).
* Databases are migrated once per session and service: each test gets the schema at head with
  empty tables (``database_url``); only the migration tests start from nothing
  (``empty_database_url``).
* Consumers of the tests' apps (and of the processes they start) use a short Kafka session
  (``KAFKA_SESSION_TIMEOUT_MS``): Tansu holds a group join for about half of it, and the suite
  starts thousands of consumers (at aiokafka's 10 s default, 5-18 s per app start).
* ``CHURN_TEST_MYSQL_URL`` (a template with ``{service}``, e.g.
  ``mysql+aiomysql://churn_{service}:churn_{service}@127.0.0.1:3306/churn_{service}``) adds a
  MySQL/MariaDB run of every database-backed test; ``CHURN_TEST_REDIS_URL`` adds Redis.

Helpers (``wait_for``, ``TokenSigner``, ``reset_mysql`` …) live in ``testkit.py``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit import (
    REDIS_URL,
    TokenSigner,
    database_backends,
    empty_mysql,
    mysql_url,
    reset_mysql,
    serve_in_process,
    sqlite_template,
    tansu_broker,
)

#: Per service prefix: the consumers' session and heartbeat in every app and process of the run.
TEST_KAFKA_SESSION = {"KAFKA_SESSION_TIMEOUT_MS": "3000", "KAFKA_HEARTBEAT_INTERVAL_MS": "500"}
SETTINGS_PREFIXES = ("AUTH", "CUSTOMERS", "PREDICTION", "ALERTS", "GATEWAY")


def pytest_configure(config: pytest.Config) -> None:
    """Short consumer sessions for the whole run, unless the caller set them (environment)."""
    for prefix in SETTINGS_PREFIXES:
        for name, value in TEST_KAFKA_SESSION.items():
            os.environ.setdefault(f"CHURN_{prefix}_{name}", value)


@pytest.fixture(scope="module")
def kafka_bootstrap() -> Iterator[str]:
    """A real Tansu broker on a free loopback port for one test module.

    One per module, not per session: Tansu keeps everything in memory, and a broker holding
    every message and consumer group of a whole run answered ever more slowly (tests that read
    a topic from its start read the whole run's messages); a start costs about 0.1 s.
    Started like the launcher's: a start that loses its port to another process (a parallel
    run) is retried on a new one, and only a listener of this very broker counts as started.
    """
    with tansu_broker() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Any]:
    """Per service, a SQLite file migrated to head once per session (made when first asked)."""
    made: dict[str, Path] = {}
    folder = tmp_path_factory.mktemp("schemas")

    async def template(service: str) -> Path:
        if service not in made:
            made[service] = await sqlite_template(folder / f"{service}.db", service)
        return made[service]

    return template


@pytest.fixture(params=database_backends())
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_templates: Callable[[str], Any]
) -> str:
    """A database of the service named by the ``service_name`` fixture, its schema at head and
    every table empty: on SQLite a copy of the session's migrated file, on MySQL the service's
    database migrated once per session and emptied before each test. Apps started on it with
    ``auto_migrate`` find nothing to do."""
    service: str = request.getfixturevalue("service_name")
    if request.param == "sqlite":
        path = tmp_path / f"{service}.db"
        shutil.copyfile(await sqlite_templates(service), path)
        return f"sqlite+aiosqlite:///{path}"
    url = mysql_url(service)
    await empty_mysql(url, service)
    return url


@pytest.fixture(params=database_backends())
async def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database with no tables at all, for the tests of the migrations themselves."""
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


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say at the end which real backends the run used, and why any was left out; then where
    any app's shutdown hung (``testkit.report_stuck_tasks``), last, because a long CI log may
    be cut in the middle, where that failure's captured output is."""
    import testkit
    from testkit import DATASETS, MYSQL_TEMPLATE

    lines = [
        "SQLite + the Tansu broker: always",
        "MySQL/MariaDB: "
        + (
            "ran (CHURN_TEST_MYSQL_URL)"
            if MYSQL_TEMPLATE
            else "SKIPPED: CHURN_TEST_MYSQL_URL unset"
        ),
        "Redis: "
        + ("ran (CHURN_TEST_REDIS_URL)" if REDIS_URL else "SKIPPED: CHURN_TEST_REDIS_URL unset"),
        "datasets: "
        + (
            "ran (../shared/datasets)"
            if DATASETS.is_dir()
            else "SKIPPED: ../shared/datasets absent"
        ),
    ]
    terminalreporter.write_sep("-", "backends")
    for line in lines:
        terminalreporter.write_line(line)
    if testkit.STUCK_REPORTS:
        terminalreporter.write_sep("-", "shutdowns that hung")
        for report in testkit.STUCK_REPORTS:
            terminalreporter.write_line(report)


@pytest.fixture(scope="module", autouse=True)
async def _no_kafka_client_outlives_its_module() -> AsyncIterator[None]:
    """Fail a module that leaves an aiokafka client running on the session's event loop.

    Such a client outlives its module's broker and retries it forever: one run logged 53,000
    failed connects and pushed later apps' shutdowns past their 120 s limit."""
    yield
    await asyncio.sleep(0)
    left = sorted(
        {
            getattr(task.get_coro(), "__qualname__", "?")
            for task in asyncio.all_tasks()
            if "aiokafka" in getattr(getattr(task.get_coro(), "cr_code", None), "co_filename", "")
        }
    )
    assert not left, f"aiokafka tasks still running after the module: {left}"
