"""Database plumbing: engines, sessions, aware-UTC datetimes and Alembic, for SQLite and MySQL.

The caller owns the transaction: request dependencies and message handlers open one session per
unit of work and commit once; repositories only add, flush and query.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, event, text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.types import TypeDecorator
from sqlmodel.ext.asyncio.session import AsyncSession


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC (microsecond precision on MySQL) and always returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        tz = value.tzinfo
        if tz is None:
            raise ValueError("naive datetimes are not stored; use aware UTC")
        # Already UTC (nearly always): skip the conversion, which costs more than the rest.
        return (
            value.replace(tzinfo=None) if tz is UTC else value.astimezone(UTC).replace(tzinfo=None)
        )

    def bind_processor(self, dialect: Dialect) -> Any:
        """On SQLite, one step from the aware time to the stored text.

        The generic path converts to naive UTC, then SQLite's ``DATETIME`` formats the text
        from a dict of its fields: an ingest binds two times per event, and the pair cost as
        much as the rest of the events' insert. ``isoformat`` writes the same text before its offset
        (``YYYY-MM-DD HH:MM:SS.ffffff``, microseconds always present) in one C call."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            tz = value.tzinfo
            if tz is None:
                raise ValueError("naive datetimes are not stored; use aware UTC")
            if tz is not UTC:
                value = value.astimezone(UTC)
            # Fixed width for years 1 to 9999; what follows is the "+00:00" offset.
            return value.isoformat(" ", "microseconds")[:26]

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def json_dumps(value: Any) -> str:
    """JSON columns' encoder: orjson, several times quicker than the standard library's on the
    event properties, feature profiles and feature states every ingest writes. Keys that are
    not strings are written as strings, as ``json.dumps`` does."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def json_loads(text: str | bytes) -> Any:
    """JSON columns' decoder: orjson, or the standard library's for what orjson refuses (a
    ``NaN`` that ``json.dumps`` once wrote into a SQLite row)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An async engine tuned per backend (WAL and foreign keys on SQLite, pings on MySQL);
    JSON columns go through orjson (:func:`json_dumps`, :func:`json_loads`)."""
    parsed = make_url(url)
    codec: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json_loads}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **codec)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_size=10,
        max_overflow=10,
        **codec,
    )


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def commit(session: AsyncSession) -> None:
    """Commit, and if the commit fails, discard the connection.

    After a failed ``COMMIT`` the driver's connection may still hold the transaction's
    writes while SQLAlchemy believes the transaction is over; the pool would then hand it to
    the next unit of work, whose commit would store them. Invalidating the connection closes
    it, and the database rolls back whatever it held.
    """
    try:
        await session.commit()
    except BaseException:
        await session.invalidate()
        raise


@asynccontextmanager
async def unit_of_work(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on any error."""
    async with factory() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await commit(session)


#: MySQL/MariaDB errors after which the whole transaction may simply run again:
#: 1213 (deadlock, the transaction was rolled back) and 1205 (lock wait timeout).
_MYSQL_RETRYABLE = frozenset({1213, 1205})
_SQLITE_RETRYABLE = ("database is locked", "database table is locked")


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a lock conflict that a retry of the same transaction can get past.

    Deadlocks and lock-wait timeouts on MySQL, ``SQLITE_BUSY`` on SQLite. A lost connection is
    not transient here: a commit whose answer was lost may have succeeded.
    """
    if not isinstance(exc, DBAPIError) or exc.orig is None:
        return False
    args = getattr(exc.orig, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_RETRYABLE
    message = str(exc.orig).lower()
    return any(fragment in message for fragment in _SQLITE_RETRYABLE)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


def _alembic_config(script_location: str, url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def run_migrations(engine: AsyncEngine, script_location: str, revision: str = "head") -> None:
    """Upgrade the service's schema to ``revision`` over the given async engine."""
    from alembic import command

    cfg = _alembic_config(script_location, engine.url.render_as_string(hide_password=False))

    def _upgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def downgrade_migrations(engine: AsyncEngine, script_location: str, revision: str) -> None:
    from alembic import command

    cfg = _alembic_config(script_location, engine.url.render_as_string(hide_password=False))

    def _downgrade(connection: Connection) -> None:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_downgrade)


def alembic_env(target_metadata: Any) -> None:
    """Body of every service's ``migrations/env.py``: run over the connection handed in by
    :func:`run_migrations`, or over a fresh engine when invoked from the ``alembic`` CLI."""
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")

    def _run(conn: Connection) -> None:
        context.configure(
            connection=conn,
            target_metadata=target_metadata,
            render_as_batch=conn.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    if connection is not None:
        _run(connection)
        return

    async def _online() -> None:
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        async with engine.begin() as conn:
            await conn.run_sync(_run)
        await engine.dispose()

    asyncio.run(_online())
