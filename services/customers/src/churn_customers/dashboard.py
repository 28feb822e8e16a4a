"""The customers' part of the dashboard (the gateway composes ``/v1/dashboard/*`` from it and
the alerts service's part) and the daily risk trends of the dashboard and of cohorts.

A trend is computed from stored data, not sampled: every change of a customer's latest risk
level is kept (``customer_risk_changes``, written with the score that made it), so the
customers per level at the end of a day are the changes up to then added up, and the
unscored ones are the customers created by then less the scored ones.

The tenant-wide trend keeps what it added up for past days (``customer_risk_days``), so only
the first trend over a day pays for the sums: later ones read one row per past day and count
today live. A score that arrives for a past day drops the stored days from that day on, and a
deletion drops the tenant's stored days (deleted customers leave the past days too); the next
trend computes them again. A cohort's trend is always added up (its members change).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.repository import (
    RISK_ORDER,
    CohortRepository,
    DashboardRepository,
    as_date,
)
from churn_customers.schemas import (
    CustomerFilter,
    CustomersSummary,
    RiskLevelCounts,
    RiskTrend,
    RiskTrendDay,
)
from churn_shared.db import utcnow

#: Equal-width bins of the score histogram over [0, 1].
HISTOGRAM_BINS = 20
#: The longest trend, in days.
MAX_TREND_DAYS = 365
#: "Moved up lately": a rise of the risk level in this many days before now.
MOVED_UP_WINDOW = timedelta(days=7)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def daily_levels(
    changes: Iterable[tuple[date, str | None, str, int]],
    created: Iterable[tuple[date, int]],
    risen: Mapping[date, int],
    first_day: date,
    last_day: date,
) -> list[RiskTrendDay]:
    """The customers per risk level at the end of each day from ``first_day`` to ``last_day``:
    the level changes per (day, from, to) and the customers created per day up to then, added
    up; ``risen``: customers that moved up per day."""
    delta: dict[date, Counter[str]] = {}
    for day, from_level, to_level, n in changes:
        counts = delta.setdefault(max(day, first_day - timedelta(days=1)), Counter())
        counts[to_level] += n
        if from_level is not None:
            counts[from_level] -= n
    born: Counter[date] = Counter()
    for day, n in created:
        born[max(day, first_day - timedelta(days=1))] += n
    running: Counter[str] = Counter(delta.get(first_day - timedelta(days=1), Counter()))
    total = born.get(first_day - timedelta(days=1), 0)
    days: list[RiskTrendDay] = []
    day = first_day
    while day <= last_day:
        running.update(delta.get(day, Counter()))
        total += born.get(day, 0)
        scored = {level: max(running[level], 0) for level in RISK_ORDER}
        days.append(
            RiskTrendDay(
                date=day,
                risk_levels=RiskLevelCounts(
                    **scored, unscored=max(total - sum(scored.values()), 0)
                ),
                moved_up=risen.get(day, 0),
            )
        )
        day += timedelta(days=1)
    return days


async def risk_trend(
    session: AsyncSession,
    tenant_id: str,
    days: int,
    *,
    last_day: date | None = None,
    where: CustomerFilter | None = None,
) -> list[RiskTrendDay]:
    """The tenant's customers (those matching ``where`` now) per risk level at the end of each
    of the ``days`` days up to ``last_day`` (default: today, UTC), added up from the changes."""
    last = last_day or utcnow().date()
    first = last - timedelta(days=days - 1)
    until = day_start(last + timedelta(days=1))
    repository = DashboardRepository(session)
    changes = await repository.changes_by_day(tenant_id, last, where)
    created = await repository.created_by_day(tenant_id, until, where)
    risen = await repository.risen_by_day(tenant_id, first, last, where)
    return daily_levels(changes, created, risen, first, last)


def _stored(row: Any) -> RiskTrendDay:
    return RiskTrendDay(
        date=as_date(row.day),
        risk_levels=RiskLevelCounts(
            high=row.high, medium=row.medium, low=row.low, unscored=row.unscored
        ),
        moved_up=row.moved_up,
    )


async def tenant_trend(
    session: AsyncSession, tenant_id: str, days: int, last_day: date | None = None
) -> list[RiskTrendDay]:
    """:func:`risk_trend` for the whole tenant: past days from the rollup (those missing are
    added up once and stored), today counted live."""
    today = utcnow().date()
    last = last_day or today
    if last > today:  # not a day to keep: nothing to reuse
        return await risk_trend(session, tenant_id, days, last_day=last)
    first = last - timedelta(days=days - 1)
    closed = min(last, today - timedelta(days=1))
    repository = DashboardRepository(session)
    known: dict[date, RiskTrendDay] = {}
    if first <= closed:
        known = {
            item.date: item
            for item in map(_stored, await repository.stored_days(tenant_id, first, closed))
        }
        span = (closed - first).days + 1
        missing = [first + timedelta(days=k) for k in range(span)]
        missing = [day for day in missing if day not in known]
        if missing:
            computed = await risk_trend(
                session, tenant_id, (closed - missing[0]).days + 1, last_day=closed
            )
            fresh = [item for item in computed if item.date not in known]
            await repository.store_days(
                [
                    {
                        "tenant_id": tenant_id,
                        "day": item.date,
                        **item.risk_levels.model_dump(),
                        "moved_up": item.moved_up,
                    }
                    for item in fresh
                ]
            )
            known.update((item.date, item) for item in fresh)
    items = [known[first + timedelta(days=k)] for k in range(max((closed - first).days + 1, 0))]
    if last == today:
        levels = await repository.level_counts(tenant_id)
        risen = await repository.risen_by_day(tenant_id, today, today)
        items.append(
            RiskTrendDay(
                date=today,
                risk_levels=RiskLevelCounts(
                    **{level: levels.get(level, 0) for level in RISK_ORDER},
                    unscored=levels.get(None, 0),
                ),
                moved_up=risen.get(today, 0),
            )
        )
    return items


class DashboardService:
    """The customers' part of the dashboard, for one tenant, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._dashboard = DashboardRepository(session)

    async def summary(self, tenant_id: str) -> CustomersSummary:
        stats = await CohortRepository(self._session).stats(tenant_id, CustomerFilter())
        now = utcnow()
        return CustomersSummary(
            customers=stats["size"],
            risk_levels=RiskLevelCounts(**stats["risk_levels"]),
            score_histogram=await self._dashboard.histogram(tenant_id, HISTOGRAM_BINS),
            moved_up_last_7_days=await self._dashboard.risen(tenant_id, now - MOVED_UP_WINDOW),
            revenue_at_risk=stats["revenue_at_risk"],
        )

    async def trend(self, tenant_id: str, days: int, last_day: date | None = None) -> RiskTrend:
        return RiskTrend(items=await tenant_trend(self._session, tenant_id, days, last_day))
