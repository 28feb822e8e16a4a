"""The Alembic history goes up, down and up again on each backend."""

from __future__ import annotations

import sqlalchemy as sa

from churn_alerts.worker import MIGRATIONS
from churn_shared.db import create_engine, downgrade_migrations, run_migrations

TABLES = {"alert_rules", "alert_channels", "alerts", "deliveries", "outbox", "processed_events"}


async def _tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))


async def test_stairway(empty_database_url):
    engine = create_engine(empty_database_url)
    try:
        await run_migrations(engine, MIGRATIONS)
        assert await _tables(engine) >= TABLES
        await downgrade_migrations(engine, MIGRATIONS, "base")
        assert not TABLES & await _tables(engine)
        await run_migrations(engine, MIGRATIONS)
        assert await _tables(engine) >= TABLES
    finally:
        await engine.dispose()
