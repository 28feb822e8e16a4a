"""Customer-list latency with filters at 100k customers per tenant (``GET /v1/customers``).

Migrates a fresh customers database (SQLite file, or the MySQL/MariaDB URL given), fills two
tenants with N customers each (scores, risk levels, activity dates, e-mail/name and a ``plan``
attribute spread over the rows), then times the customer service's list call — the SQL and the
response models, as a request runs them — for each filter and sort, and prints the median and
p90 of R runs per case, and the ratio to the unfiltered first page measured in the same run.

    uv run python bench/customer_list.py                       # SQLite, 100k per tenant
    uv run python bench/customer_list.py --mysql 'mysql+aiomysql://u:p@127.0.0.1:3306/db'

The MySQL database is emptied (its tables dropped) first.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from churn_customers.models import customers
from churn_customers.repository import search_columns
from churn_customers.schemas import CustomerFilter
from churn_customers.service import CustomerService
from churn_shared.db import create_engine, create_session_factory, run_migrations, unit_of_work

MIGRATIONS = str(
    Path(__file__).resolve().parents[1] / "services/customers/src/churn_customers/migrations"
)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PLANS = ("free", "silver", "gold", "platinum")
FIRST = ("ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ivy", "jon")


def rows(tenant_id: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        p = rng.random() if i % 10 else None  # a tenth never scored
        name = f"{FIRST[i % 10]} {rng.choice(FIRST)}son {i}"
        attributes = {
            "email": f"{FIRST[(i // 10) % 10]}.{i}@example.com",
            "name": name,
            "plan": PLANS[i % 4],
            "seats": i % 50,
        }
        updated = T0 + timedelta(minutes=rng.randrange(0, 60 * 24 * 330))
        out.append(
            {
                "tenant_id": tenant_id,
                "customer_id": f"c-{i:07d}",
                "attributes": attributes,
                "created_at": T0,
                "updated_at": updated,
                "first_seen_at": T0,
                "churn_probability": p,
                "risk_level": None
                if p is None
                else "high"
                if p >= 0.7
                else "medium"
                if p >= 0.4
                else "low",
                "model_version": None if p is None else "m-1",
                "scored_at": None if p is None else updated,
                **search_columns(attributes),
            }
        )
    return out


CASES: list[tuple[str, dict[str, Any]]] = [
    ("no filter", {}),
    ("risk_level=high", {"risk_level": ["high"]}),
    ("risk_level=high,medium", {"risk_level": ["high", "medium"]}),
    ("min_probability=0.9", {"min_probability": 0.9}),
    ("0.4<=p<=0.45", {"min_probability": 0.4, "max_probability": 0.45}),
    ("q=eve.12 (e-mail)", {"q": "eve.12"}),
    ("q=c-00042 (id)", {"q": "c-00042"}),
    ("q=zzz (no match)", {"q": "zzz"}),
    ("seen_before=Feb 1", {"seen_before": datetime(2026, 2, 1, tzinfo=UTC)}),
    ("attr.plan=gold", {"attributes": {"plan": "gold"}}),
    ("attr.seats=7 (2%)", {"attributes": {"seats": "7"}}),
    ("attr.plan=none (no match: worst case)", {"attributes": {"plan": "none"}}),
    ("q=eve.12 + attr.seats=7 (rare)", {"q": "eve.12", "attributes": {"seats": "7"}}),
    (
        "high + attr.plan=gold + seen_after",
        {
            "risk_level": ["high"],
            "attributes": {"plan": "gold"},
            "seen_after": datetime(2026, 6, 1, tzinfo=UTC),
        },
    ),
]
SORTS = ("customer_id", "-churn_probability", "-updated_at")


async def main(url: str, n: int, runs: int, limit: int) -> None:
    engine = create_engine(url)
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            names = (await conn.execute(sa.text("SHOW TABLES"))).scalars().all()
            for name in names:
                await conn.execute(sa.text(f"DROP TABLE `{name}`"))
    await run_migrations(engine, MIGRATIONS)
    rng = random.Random(7)
    started = time.perf_counter()
    for tenant in ("bench-a", "bench-b"):
        data = rows(tenant, n, rng)
        async with engine.begin() as conn:
            for start in range(0, n, 2_000):
                await conn.execute(sa.insert(customers), data[start : start + 2_000])
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE TABLE customers"))
    else:
        async with engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE"))
    print(
        f"{engine.dialect.name}: {2 * n} customers (2 tenants) loaded in "
        f"{time.perf_counter() - started:.0f}s;"
        f" first page of {limit}, median/p90 of {runs} runs in ms"
    )
    factory = create_session_factory(engine)
    baseline: float | None = None
    print(f"{'filter':40} {'sort':20} {'median':>8} {'p90':>8} {'ratio':>6} rows")
    for label, values in CASES:
        where = CustomerFilter(**values)
        for sort in SORTS:
            times = []
            for _ in range(runs):
                async with unit_of_work(factory) as session:
                    t = time.perf_counter()
                    page = await CustomerService(session).list_customers(
                        "bench-a",
                        limit=limit,
                        cursor=None,
                        sort=sort,
                        where=where,  # type: ignore[arg-type]
                    )
                    times.append((time.perf_counter() - t) * 1000)
            median = statistics.median(times)
            p90 = statistics.quantiles(times, n=10)[-1] if runs >= 2 else median
            baseline = baseline or median
            print(
                f"{label:40} {sort:20} {median:8.1f} {p90:8.1f} {median / baseline:6.1f}",
                len(page.items),
            )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000, help="per tenant")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--mysql", help="a MySQL/MariaDB URL (emptied first) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.mysql or f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(main(db, args.customers, args.runs, args.limit))
