#!/usr/bin/env python3
"""Apply one service's Alembic history to its database, then exit (the migration job).

``migrate.py <auth|customers|prediction|alerts>``: reads the service's own settings
(``CHURN_<SERVICE>_DATABASE_URL``), waits up to ``CHURN_MIGRATE_WAIT_SECONDS`` (120) for the
database to accept connections, upgrades to ``head`` and exits 0; any failure exits non-zero.
Run it before rolling out a new version: migrations are additive, so the old version keeps
working on the new schema while its pods are replaced.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from importlib.resources import files

from churn_shared.db import create_engine, ping, run_migrations

SERVICES = ("auth", "customers", "prediction", "alerts")


async def migrate(service: str) -> None:
    settings = importlib.import_module(f"churn_{service}.config").Settings()
    location = str(files(f"churn_{service}") / "migrations")
    engine = create_engine(settings.database_url.get_secret_value())
    deadline = time.monotonic() + float(os.environ.get("CHURN_MIGRATE_WAIT_SECONDS", "120"))
    try:
        while True:
            try:
                await ping(engine)
                break
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise SystemExit(f"migrate {service}: database not reachable: {exc}") from exc
                print(f"migrate {service}: waiting for the database ({exc.__class__.__name__})")
                await asyncio.sleep(2)
        started = time.monotonic()
        await run_migrations(engine, location)
        print(f"migrate {service}: at head ({time.monotonic() - started:.1f} s)", flush=True)
    finally:
        await engine.dispose()


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in SERVICES:
        raise SystemExit(f"usage: migrate.py <{'|'.join(SERVICES)}>")
    asyncio.run(migrate(sys.argv[1]))


if __name__ == "__main__":
    main()
