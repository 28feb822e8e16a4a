"""Retention curves (``GET /v1/cohorts/retention``) at 100k customers and millions of events.

Migrates a fresh customers database (SQLite file, or the MySQL/MariaDB URL given), fills one
tenant with N customers who each placed a first order somewhere in two years and then
ordered again now and then until they stopped (E events per customer, about a fifth of them
``order_placed``, the rest logins and e-mails), plus a second tenant with a tenth of that, then
times the service's retention call — the SQL and the response model, as a request runs them —
for months and weeks, unfiltered and with customer filters, and prints the median wall time and
this process's CPU time (SQLite's included; MariaDB's server is not) of R runs.

    uv run python bench/cohort_retention.py                       # SQLite, 100k customers
    uv run python bench/cohort_retention.py --mysql 'mysql+aiomysql://u:p@127.0.0.1:3306/db'

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

from churn_customers.models import customers, events
from churn_customers.retention import RetentionService
from churn_customers.schemas import CustomerFilter
from churn_shared.db import create_engine, create_session_factory, run_migrations, unit_of_work

MIGRATIONS = str(
    Path(__file__).resolve().parents[1] / "services/customers/src/churn_customers/migrations"
)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 730
OTHER_TYPES = ("login", "email_sent", "email_opened")


def customer_rows(tenant_id: str, n: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        p = rng.random()
        out.append(
            {
                "tenant_id": tenant_id,
                "customer_id": f"c-{i:07d}",
                "attributes": {"plan": ("free", "silver", "gold", "platinum")[i % 4]},
                "created_at": T0,
                "updated_at": T0,
                "first_seen_at": T0,
                "churn_probability": p,
                "risk_level": "high" if p >= 0.7 else "medium" if p >= 0.4 else "low",
                "model_version": "m-1",
                "scored_at": T0,
            }
        )
    return out


def event_rows(
    tenant_id: str, n: int, per_customer: int, rng: random.Random, received: datetime
) -> list[dict[str, Any]]:
    """About ``per_customer`` events per customer: a first order, repeat orders that thin out
    over the months after it, and other events in between."""
    out: list[dict[str, Any]] = []
    serial = 0
    for i in range(n):
        cid = f"c-{i:07d}"
        start = rng.randrange(0, DAYS - 1)
        keep = rng.uniform(0.6, 0.97)  # how loyal this customer is
        day, moments = start, []
        while day < DAYS and len(moments) < per_customer // 2:
            moments.append(("order_placed", day))
            day += max(1, int(rng.expovariate(1 / 25)))
            if rng.random() > keep:
                break
        while len(moments) < per_customer:
            moments.append((rng.choice(OTHER_TYPES), rng.randrange(start, DAYS)))
        for kind, at_day in moments:
            serial += 1
            out.append(
                {
                    "tenant_id": tenant_id,
                    "event_id": f"e-{serial:09d}",
                    "customer_id": cid,
                    "type": kind,
                    "occurred_at": T0 + timedelta(days=at_day, seconds=rng.randrange(86_400)),
                    "properties": {"amount": 20.0} if kind == "order_placed" else {},
                    "received_at": received,
                }
            )
    return out


CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("month, no filter", "month", {}),
    ("week, no filter", "week", {}),
    ("month, risk_level=high (30%)", "month", {"risk_level": ["high"]}),
    ("month, attr.plan=gold (25%)", "month", {"attributes": {"plan": "gold"}}),
    ("week, q=c-00012 (100 customers)", "week", {"q": "c-00012"}),
]


async def main(url: str, n: int, per_customer: int, runs: int) -> None:
    engine = create_engine(url)
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            names = (await conn.execute(sa.text("SHOW TABLES"))).scalars().all()
            for name in names:
                await conn.execute(sa.text(f"DROP TABLE `{name}`"))
    await run_migrations(engine, MIGRATIONS)
    rng = random.Random(11)
    started = time.perf_counter()
    total_events = orders = 0
    for tenant, count in (("bench-a", n), ("bench-b", n // 10)):
        async with engine.begin() as conn:
            rows = customer_rows(tenant, count, rng)
            for start in range(0, len(rows), 5_000):
                await conn.execute(sa.insert(customers), rows[start : start + 5_000])
        for first in range(0, count, 10_000):
            rows = event_rows(tenant, min(10_000, count - first), per_customer, rng, T0)
            for row in rows:
                row["customer_id"] = f"c-{int(row['customer_id'][2:]) + first:07d}"
                row["event_id"] = f"{first}-{row['event_id']}"
            total_events += len(rows)
            orders += sum(row["type"] == "order_placed" for row in rows)
            async with engine.begin() as conn:
                for start in range(0, len(rows), 5_000):
                    await conn.execute(sa.insert(events), rows[start : start + 5_000])
    async with engine.begin() as conn:
        if engine.dialect.name != "sqlite":
            await conn.execute(sa.text("ANALYZE TABLE customers, events"))
        else:
            await conn.execute(sa.text("ANALYZE"))
    print(
        f"{engine.dialect.name}: {n + n // 10} customers (2 tenants), {total_events} events "
        f"({orders} orders) loaded in {time.perf_counter() - started:.0f}s;"
        f" median of {runs} runs on tenant bench-a ({n} customers)"
    )
    factory = create_session_factory(engine)
    baseline: float | None = None
    print(f"{'case':34} {'wall ms':>8} {'cpu ms':>8} {'ratio':>6} cohorts")
    for label, period, values in CASES:
        times, cpu = [], []
        for _ in range(runs):
            async with unit_of_work(factory) as session:
                t, c = time.perf_counter(), time.process_time()
                curves = await RetentionService(session).curves(
                    "bench-a",
                    period,  # type: ignore[arg-type]
                    CustomerFilter(**values),
                )
                times.append((time.perf_counter() - t) * 1000)
                cpu.append((time.process_time() - c) * 1000)
        median, median_cpu = statistics.median(times), statistics.median(cpu)
        baseline = baseline or median_cpu
        print(
            f"{label:34} {median:8.0f} {median_cpu:8.0f} {median_cpu / baseline:6.2f}",
            len(curves.cohorts),
        )
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000, help="of the main tenant")
    parser.add_argument("--events", type=int, default=20, help="per customer (about)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mysql", help="a MySQL/MariaDB URL (emptied first) instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.mysql or f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(main(db, args.customers, args.events, args.runs))
