"""Retention curves per acquisition cohort, from the tenant's ``order_placed`` events.

A customer's cohort is the period (calendar month, or ISO week: Monday to Sunday, UTC) of their
first ``order_placed``; ``retention[k]`` of a cohort is the share of its customers with at least
one ``order_placed`` in the k-th period after it, so ``retention[0]`` is 1.0. Curves run up to
the period of the tenant's latest order (whatever the filter: a selection that stopped ordering
shows zeros, not a shorter curve), which may still be under way. The repository streams each
customer's distinct order periods (one statement, grouped by customer in index order); this
module finds each customer's cohort, counts, names the periods and divides.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.cohorts import resolve_segment
from churn_customers.repository import RetentionRepository
from churn_customers.schemas import (
    CustomerFilter,
    RetentionCohort,
    RetentionCurves,
    RetentionPeriod,
)

#: Most cohorts (periods) per answer: the latest ones, up to the tenant's latest order.
MAX_RETENTION_COHORTS = 260
#: Decimals of each retention share.
RETENTION_DECIMALS = 4


def period_number(moment: datetime | date, period: RetentionPeriod) -> int:
    """The period of a moment as ``churn_customers.repository.period_index`` numbers it."""
    if period == "month":
        return moment.year * 12 + moment.month - 1
    day = moment.date() if isinstance(moment, datetime) else moment
    return (day.toordinal() - 1) // 7


def period_label(number: int, period: RetentionPeriod) -> str:
    """``2010-12`` for a month, the ISO week ``2010-W49`` for a week."""
    if period == "month":
        return f"{number // 12:04d}-{number % 12 + 1:02d}"
    monday = date.fromordinal(number * 7 + 1)
    iso = monday.isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


class RetentionService:
    """Retention curves of one tenant's customers, in the caller's (read) transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._retention = RetentionRepository(session)

    async def curves(
        self,
        tenant_id: str,
        period: RetentionPeriod,
        where: CustomerFilter | None = None,
        limit: int = MAX_RETENTION_COHORTS,
    ) -> RetentionCurves:
        """The cohorts of the latest ``limit`` periods (oldest first; periods in which no
        selected customer placed a first order are left out), each with its curve."""
        await resolve_segment(self._session, tenant_id, where)
        tenant_last: int | None = None
        if where is not None and where.model_dump(exclude_defaults=True):
            # A selection's curves run to the tenant's latest order too, not to its own.
            last_at = await self._retention.last_order_at(tenant_id)
            if last_at is not None:
                tenant_last = period_number(last_at, period)
        # (cohort, offset) → customers of the cohort who ordered in period cohort + offset.
        counts: Counter[tuple[int, int]] = Counter()
        last = tenant_last
        async for periods in self._retention.order_periods(tenant_id, period, where):
            cohort = min(periods)
            counts.update((cohort, number - cohort) for number in periods)
            latest = max(periods)
            last = latest if last is None or latest > last else last
        if last is None or not counts:
            return RetentionCurves(period=period, cohorts=[])
        first = last - min(limit, MAX_RETENTION_COHORTS) + 1
        active: dict[int, dict[int, int]] = {}
        for (cohort, offset), customers in counts.items():
            if cohort >= first:
                active.setdefault(cohort, {})[offset] = customers
        cohorts = []
        for cohort, by_offset in sorted(active.items()):
            size = by_offset[0]  # every member ordered in their cohort's own period
            cohorts.append(
                RetentionCohort(
                    cohort=period_label(cohort, period),
                    size=size,
                    retention=[
                        round(by_offset.get(k, 0) / size, RETENTION_DECIMALS)
                        for k in range(last - cohort + 1)
                    ],
                )
            )
        return RetentionCurves(period=period, cohorts=cohorts)
