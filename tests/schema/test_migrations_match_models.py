"""Each service's Alembic history builds exactly the schema its models declare: a model change
without a migration (a column, a table, an index) fails here instead of in production."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from churn_shared.db import create_engine, run_migrations

SERVICES = ("auth", "customers", "prediction", "alerts")


@pytest.fixture(params=SERVICES)
def service_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_migrations_build_the_models_schema(
    service_name: str, empty_database_url: str
) -> None:
    models = importlib.import_module(f"churn_{service_name}.models")
    migrations = str(Path(models.__file__).resolve().parent / "migrations")
    engine = create_engine(empty_database_url)
    try:
        await run_migrations(engine, migrations)

        def differences(connection: Any) -> list[Any]:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            return list(compare_metadata(context, models.Base.metadata))

        async with engine.connect() as conn:
            diff = await conn.run_sync(differences)
    finally:
        await engine.dispose()
    assert diff == [], f"{service_name}: models and migrations differ: {diff}"
