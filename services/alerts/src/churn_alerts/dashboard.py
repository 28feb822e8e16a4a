"""The alerts' part of the dashboard (the gateway composes ``/v1/dashboard/*`` from it and the
customers service's part): alerts per status now, and per status at the end of each day.

A day's counts are computed from stored data: every status change of an alert is in its
history (``raised`` from no status to ``open``, then each transition), so the alerts per status
at the end of a day are the changes up to then added up. A deleted customer's alerts go with
their history, from the past days too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.lifecycle import ALERT_STATUSES
from churn_alerts.repository import DashboardRepository
from churn_alerts.schemas import AlertsSummary, AlertStatusCounts, AlertTrend, AlertTrendDay
from churn_shared.db import utcnow

#: The longest trend, in days.
MAX_TREND_DAYS = 365


def daily_statuses(
    changes: Iterable[tuple[date, str | None, str, int]], first_day: date, last_day: date
) -> list[AlertTrendDay]:
    """The alerts per status at the end of each day from ``first_day`` to ``last_day``, from
    the status changes per (day, from, to) up to then."""
    before = first_day - timedelta(days=1)
    delta: dict[date, Counter[str]] = {}
    for day, from_status, to_status, n in changes:
        counts = delta.setdefault(max(day, before), Counter())
        counts[to_status] += n
        if from_status is not None:
            counts[from_status] -= n
    running: Counter[str] = Counter(delta.get(before, Counter()))
    days: list[AlertTrendDay] = []
    day = first_day
    while day <= last_day:
        running.update(delta.get(day, Counter()))
        ends = {status: max(running[status], 0) for status in ALERT_STATUSES}
        days.append(AlertTrendDay(date=day, alerts=AlertStatusCounts(**ends)))
        day += timedelta(days=1)
    return days


class DashboardService:
    """The alerts' part of the dashboard, for one tenant, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._dashboard = DashboardRepository(session)

    async def summary(self, tenant_id: str) -> AlertsSummary:
        counts = await self._dashboard.count_by_status(tenant_id)
        return AlertsSummary(
            alerts=AlertStatusCounts(**{s: counts.get(s, 0) for s in ALERT_STATUSES})
        )

    async def trend(self, tenant_id: str, days: int, last_day: date | None = None) -> AlertTrend:
        last = last_day or utcnow().date()
        first = last - timedelta(days=days - 1)
        until = datetime.combine(last + timedelta(days=1), time(0), tzinfo=UTC)
        changes = await self._dashboard.changes_by_day(tenant_id, until)
        return AlertTrend(items=daily_statuses(changes, first, last))
