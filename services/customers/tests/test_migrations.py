"""The Alembic history goes up, down and up again, and leaves exactly the models' tables."""

from __future__ import annotations

import sqlalchemy as sa

from churn_customers.models import Base
from churn_customers.worker import MIGRATIONS
from churn_shared.db import create_engine, downgrade_migrations, run_migrations


async def test_stairway_up_down_up(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    try:
        await run_migrations(engine, MIGRATIONS)
        await downgrade_migrations(engine, MIGRATIONS, "base")
        async with engine.connect() as conn:
            left = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert left <= {"alembic_version"}
        await run_migrations(engine, MIGRATIONS)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert tables - {"alembic_version"} == set(Base.metadata.tables)
    finally:
        await engine.dispose()
