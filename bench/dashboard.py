"""Dashboard and cohort-trend cost at 100k customers per tenant (the customers' part of
``GET /v1/dashboard/summary`` and ``/v1/dashboard/trend``, and ``GET /v1/cohorts/{id}/stats``).

Migrates a fresh customers database (SQLite file, or the MySQL/MariaDB URL given), fills two
tenants with N customers each — a feature profile with ``spend_last_90d``, and a year of risk
level changes (a first score on a random day, then about C more changes per customer, so the
customers' latest levels are the changes' last ones) — then times the customers service's
dashboard calls, as a request runs them (SQL and response models), and prints the median and
p90 of R runs per case.

    uv run python bench/dashboard.py                     # SQLite, 100k per tenant
    uv run python bench/dashboard.py --mysql 'mysql+aiomysql://u:p@127.0.0.1:3306/db'

The MySQL database is emptied (its tables dropped) first.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.dashboard import DashboardService, risk_trend
from churn_customers.models import (
    customer_features,
    customer_risk_changes,
    customer_risk_days,
    customers,
)
from churn_customers.schemas import CustomerFilter
from churn_shared.db import create_engine, create_session_factory, run_migrations, unit_of_work

MIGRATIONS = str(
    Path(__file__).resolve().parents[1] / "services/customers/src/churn_customers/migrations"
)
LEVELS = ("low", "medium", "high")
PROBABILITY = {"low": (0.0, 0.4), "medium": (0.4, 0.7), "high": (0.7, 1.0)}


def tenant_rows(
    tenant_id: str, n: int, changes: float, now: datetime, rng: random.Random
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    people, profiles, moves = [], [], []
    year_ago = now - timedelta(days=365)
    for i in range(n):
        cid = f"c-{i:07d}"
        created = year_ago + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
        level: str | None = None
        at = created
        if i % 10:  # a tenth never scored
            count = 1 + int(rng.expovariate(1 / changes))
            for _ in range(count):
                at = at + timedelta(
                    minutes=rng.randrange(1, int((now - at).total_seconds() // 60) + 2)
                )
                at = min(at, now)
                to = rng.choice([x for x in LEVELS if x != level])
                moves.append(
                    {
                        "tenant_id": tenant_id,
                        "customer_id": cid,
                        "changed_at": at,
                        "day": at.date(),
                        "from_level": level,
                        "to_level": to,
                    }
                )
                level = to
        p = None if level is None else rng.uniform(*PROBABILITY[level])
        people.append(
            {
                "tenant_id": tenant_id,
                "customer_id": cid,
                "attributes": {"plan": ("free", "gold")[i % 2]},
                "created_at": created,
                "updated_at": at,
                "first_seen_at": created,
                "churn_probability": p,
                "risk_level": level,
                "model_version": None if p is None else "m-1",
                "scored_at": None if p is None else at,
            }
        )
        profiles.append(
            {
                "tenant_id": tenant_id,
                "customer_id": cid,
                "features": {"spend_last_90d": round(rng.uniform(0, 500), 2)},
                "as_of": now,
                "updated_at": now,
            }
        )
    return people, profiles, moves


async def timed(
    factory: Any, runs: int, call: Callable[[AsyncSession], Awaitable[Any]], cold: bool
) -> list[float]:
    times = []
    for _ in range(runs):
        if cold:  # nothing rolled up yet: the trend adds every past day up (and stores it)
            async with unit_of_work(factory) as session:
                await session.exec(sa.delete(customer_risk_days))
        async with unit_of_work(factory) as session:
            t = time.perf_counter()
            await call(session)
            times.append((time.perf_counter() - t) * 1000)
    return times


async def main(url: str, n: int, changes: float, runs: int) -> None:
    engine = create_engine(url)
    if engine.dialect.name != "sqlite":
        async with engine.begin() as conn:
            await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
            names = (await conn.execute(sa.text("SHOW TABLES"))).scalars().all()
            for name in names:
                await conn.execute(sa.text(f"DROP TABLE `{name}`"))
    await run_migrations(engine, MIGRATIONS)
    rng = random.Random(7)
    now = datetime.now(UTC)
    started = time.perf_counter()
    total_moves = 0
    for tenant in ("bench-a", "bench-b"):
        people, profiles, moves = tenant_rows(tenant, n, changes, now, rng)
        total_moves += len(moves)
        for table, data in (
            (customers, people),
            (customer_features, profiles),
            (customer_risk_changes, moves),
        ):
            async with engine.begin() as conn:
                for start in range(0, len(data), 2_000):
                    await conn.execute(sa.insert(table), data[start : start + 2_000])
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(sa.text("ANALYZE"))
        else:
            for name in ("customers", "customer_features", "customer_risk_changes"):
                await conn.execute(sa.text(f"ANALYZE TABLE {name}"))
    print(
        f"{engine.dialect.name}: {2 * n} customers (2 tenants), {total_moves} risk level changes,"
        f" loaded in {time.perf_counter() - started:.0f}s; median/p90 of {runs} runs in ms"
    )
    factory = create_session_factory(engine)
    high = CustomerFilter(risk_level=["high"])

    def summary(session: AsyncSession) -> Awaitable[Any]:
        return DashboardService(session).summary("bench-a")

    gold = CustomerFilter(attributes={"plan": "gold"})

    def trend(days: int) -> Callable[[AsyncSession], Awaitable[Any]]:
        return lambda s: DashboardService(s).trend("bench-a", days)

    def cohort(where: CustomerFilter) -> Callable[[AsyncSession], Awaitable[Any]]:
        return lambda s: risk_trend(s, "bench-a", 30, where=where)

    cases: list[tuple[str, Callable[[AsyncSession], Awaitable[Any]], bool]] = [
        ("summary (levels, histogram, rises, revenue)", summary, False),
        ("trend days=90, past days not rolled up yet", trend(90), True),
        ("trend days=365, past days not rolled up yet", trend(365), True),
        ("trend days=7, rolled up", trend(7), False),
        ("trend days=90, rolled up", trend(90), False),
        ("trend days=365, rolled up", trend(365), False),
        ("cohort trend risk_level=high, 30 days", cohort(high), False),
        ("cohort trend attr.plan=gold, 30 days", cohort(gold), False),
    ]
    print(f"{'case':48} {'median':>8} {'p90':>8}")
    for label, call, cold in cases:
        times = sorted(await timed(factory, runs, call, cold))
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
        print(f"{label:48} {statistics.median(times):8.1f} {p90:8.1f}", flush=True)
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mysql", help="a MySQL/MariaDB URL (emptied first)")
    parser.add_argument("--customers", type=int, default=100_000, help="per tenant")
    parser.add_argument("--changes", type=float, default=1.5, help="mean extra changes each")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.mysql or f"sqlite+aiosqlite:///{tmp}/bench.db"
        asyncio.run(main(url, args.customers, args.changes, args.runs))
