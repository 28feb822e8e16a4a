"""The Alembic history of the auth service goes up, down and up again on every backend."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from churn_auth.main import MIGRATIONS
from churn_shared.db import create_engine, downgrade_migrations, run_migrations

TABLES = {"tenants", "users", "signing_keys", "refresh_tokens", "api_keys"}


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    return set(names)


async def test_stairway_up_down_up(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await run_migrations(engine, MIGRATIONS)
        after_up = await table_names(engine)
        await downgrade_migrations(engine, MIGRATIONS, "base")
        after_down = await table_names(engine)
        await run_migrations(engine, MIGRATIONS)
        after_second_up = await table_names(engine)
    finally:
        await engine.dispose()

    assert after_up >= TABLES
    assert not TABLES & after_down
    assert after_second_up >= TABLES


async def test_0002_adds_lockout_columns_and_downgrades_to_0001(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)

    async def user_columns() -> set[str]:
        async with engine.connect() as conn:
            cols = await conn.run_sync(lambda c: sa.inspect(c).get_columns("users"))
        return {col["name"] for col in cols}

    try:
        await run_migrations(engine, MIGRATIONS)
        at_head = await user_columns()
        await downgrade_migrations(engine, MIGRATIONS, "0001")
        at_0001 = await user_columns()
        tables_at_0001 = await table_names(engine)
        await run_migrations(engine, MIGRATIONS)
        again = await user_columns()
    finally:
        await engine.dispose()

    lockout = {"failed_logins", "locked_until", "tokens_valid_after"}
    assert lockout <= at_head
    assert not lockout & at_0001
    assert "api_keys" not in tables_at_0001
    assert lockout <= again
