"""Memory and time of the customer export (``GET /v1/customers/export``) at 10k and 100k rows.

Fills a fresh customers database (SQLite file, or the MySQL/MariaDB URL given, emptied first)
with N customers of one tenant, each scored (with three drivers in the score history) and with
six imported attributes, then streams the export through the service's own code (pages read in
short transactions, encoded, handed on) and discards the bytes, as a client that downloads it.
For each format and size it prints the bytes, the time and the growth of the process's peak
resident memory over its resident memory before the export (``VmHWM`` reset through
``/proc/self/clear_refs``). Flat memory: the growth at 100k is about the growth at 10k.

    uv run python bench/customer_export.py
    uv run python bench/customer_export.py --mysql 'mysql+aiomysql://u:p@127.0.0.1:3306/db'

Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from churn_customers.exporting import ExportService
from churn_customers.models import customer_scores, customers
from churn_customers.repository import search_columns
from churn_customers.schemas import CustomerFilter
from churn_shared.db import create_engine, create_session_factory, run_migrations

MIGRATIONS = str(
    Path(__file__).resolve().parents[1] / "services/customers/src/churn_customers/migrations"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


async def fill(engine: Any, tenant_id: str, n: int, offset: int) -> None:
    rng = random.Random(n)
    drivers = [
        {"feature": f, "value": 2.0, "contribution": c, "direction": "increases_risk"}
        for f, c in (
            ("payment_failures_last_90d", 1.2),
            ("logins_last_30d", 0.4),
            ("returns_count", 0.1),
        )
    ]
    async with engine.begin() as conn:
        for start in range(offset, offset + n, 2_000):
            rows, scores = [], []
            for i in range(start, min(start + 2_000, offset + n)):
                p = rng.random()
                attributes = {
                    "email": f"user{i}@example.com",
                    "name": f"User {i}",
                    "plan": ("free", "gold")[i % 2],
                    "seats": i % 40,
                    "city": "Lisbon",
                    "note": "=cmd|' /C calc'!A0" if i % 100 == 0 else "ok",
                }
                at = T0 + timedelta(minutes=i)
                level = "high" if p >= 0.7 else "medium" if p >= 0.4 else "low"
                rows.append(
                    {
                        "tenant_id": tenant_id,
                        "customer_id": f"c-{i:07d}",
                        "attributes": attributes,
                        "created_at": T0,
                        "updated_at": at,
                        "first_seen_at": T0,
                        "churn_probability": p,
                        "risk_level": level,
                        "model_version": "m-1",
                        "scored_at": at,
                        **search_columns(attributes),
                    }
                )
                scores.append(
                    {
                        "tenant_id": tenant_id,
                        "customer_id": f"c-{i:07d}",
                        "scored_at": at,
                        "churn_probability": p,
                        "risk_level": level,
                        "model_version": "m-1",
                        "drivers": drivers,
                    }
                )
            await conn.execute(sa.insert(customers), rows)
            await conn.execute(sa.insert(customer_scores), scores)


async def export(factory: Any, tenant_id: str, fmt: str) -> tuple[int, float, int]:
    before = memory_kib("VmRSS")
    reset_peak()
    started = time.perf_counter()
    prepared = await ExportService(factory).prepare(tenant_id, CustomerFilter(), fmt)  # type: ignore[arg-type]
    size = 0
    async for chunk in prepared.body:
        size += len(chunk)
    return size, time.perf_counter() - started, memory_kib("VmHWM") - before


async def main(url: str, sizes: list[int]) -> None:
    engine = create_engine(url)
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            for name in (await conn.execute(sa.text("SHOW TABLES"))).scalars().all():
                await conn.execute(sa.text(f"DROP TABLE `{name}`"))
    await run_migrations(engine, MIGRATIONS)
    factory = create_session_factory(engine)
    offset = 0
    for n in sizes:
        await fill(engine, f"bench-{n}", n, offset)
        offset += n
    print(f"{engine.dialect.name}: export of every customer, bytes / seconds / peak RSS growth")
    for fmt in ("csv", "xlsx"):
        await export(factory, f"bench-{sizes[0]}", fmt)  # warm up (imports, pools)
        for n in sizes:
            size, seconds, growth = await export(factory, f"bench-{n}", fmt)
            print(
                f"{fmt:5} {n:>8} rows  {size / 1e6:8.1f} MB  {seconds:6.1f} s  "
                f"peak RSS +{growth / 1024:6.1f} MiB  (RSS {memory_kib('VmRSS') / 1024:.0f} MiB)"
            )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--mysql", help="a MySQL/MariaDB URL (emptied first) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.mysql or f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(main(db, [int(s) for s in args.sizes.split(",")]))
