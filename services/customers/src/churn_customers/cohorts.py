"""Saved segments (cohorts): a name and a customer filter, usable as ``segment=<id>`` wherever
the customer filter is (list, export, bulk), with statistics.

A cohort's filter is stored as given and evaluated when used, so its members follow the data.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.dashboard import risk_trend
from churn_customers.repository import CohortRepository
from churn_customers.schemas import (
    CohortCreate,
    CohortList,
    CohortRead,
    CohortStats,
    CohortUpdate,
    CustomerFilter,
)
from churn_shared.db import utcnow
from churn_shared.errors import ConflictError, NotFoundError, UnprocessableError

#: Saved cohorts per tenant.
MAX_COHORTS = 500


class CohortNotFoundError(NotFoundError):
    def __init__(self, cohort_id: str) -> None:
        super().__init__(f"Cohort {cohort_id!r} was not found.")


class CohortNameTakenError(ConflictError):
    def __init__(self, name: str) -> None:
        super().__init__(f"A cohort named {name!r} exists already.")


async def resolve_segment(
    session: AsyncSession, tenant_id: str, where: CustomerFilter | None
) -> None:
    """Attach the saved filter of ``where.segment`` (the tenant's cohort; 404 when there is
    none) so the repositories apply it with the rest of ``where``."""
    if where is None or where.segment is None:
        return
    row = await CohortRepository(session).get(tenant_id, where.segment)
    if row is None:
        raise CohortNotFoundError(where.segment)
    where.attach_segment(CustomerFilter.model_validate(row.filter))


def _read(row: object) -> CohortRead:
    return CohortRead.model_validate(row)


class CohortService:
    """Cohort CRUD and statistics of one tenant, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._cohorts = CohortRepository(session)

    async def create(self, tenant_id: str, subject: str | None, body: CohortCreate) -> CohortRead:
        _check_nesting(body.filter)
        if await self._cohorts.count(tenant_id) >= MAX_COHORTS:
            raise UnprocessableError(f"A tenant keeps at most {MAX_COHORTS} cohorts.")
        if await self._cohorts.by_name(tenant_id, body.name) is not None:
            raise CohortNameTakenError(body.name)
        now = utcnow()
        cohort_id = str(uuid.uuid4())
        try:
            await self._cohorts.add(
                {
                    "id": cohort_id,
                    "tenant_id": tenant_id,
                    "name": body.name,
                    "filter": body.filter.model_dump(mode="json", exclude_none=True),
                    "created_by": (subject or "")[:64] or None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        except IntegrityError as exc:
            raise CohortNameTakenError(body.name) from exc
        return await self.get(tenant_id, cohort_id)

    async def list(self, tenant_id: str) -> CohortList:
        return CohortList(items=[_read(row) for row in await self._cohorts.all(tenant_id)])

    async def get(self, tenant_id: str, cohort_id: str) -> CohortRead:
        row = await self._cohorts.get(tenant_id, cohort_id)
        if row is None:
            raise CohortNotFoundError(cohort_id)
        return _read(row)

    async def update(self, tenant_id: str, cohort_id: str, body: CohortUpdate) -> CohortRead:
        current = await self.get(tenant_id, cohort_id)
        values: dict[str, object] = {"updated_at": utcnow()}
        if body.name is not None and body.name != current.name:
            if await self._cohorts.by_name(tenant_id, body.name) is not None:
                raise CohortNameTakenError(body.name)
            values["name"] = body.name
        if body.filter is not None:
            _check_nesting(body.filter)
            values["filter"] = body.filter.model_dump(mode="json", exclude_none=True)
        try:
            await self._cohorts.update(tenant_id, cohort_id, values)
        except IntegrityError as exc:
            raise CohortNameTakenError(str(body.name)) from exc
        return await self.get(tenant_id, cohort_id)

    async def delete(self, tenant_id: str, cohort_id: str) -> None:
        if not await self._cohorts.delete(tenant_id, cohort_id):
            raise CohortNotFoundError(cohort_id)

    async def stats(self, tenant_id: str, cohort_id: str, days: int = 30) -> CohortStats:
        """Size, risk mix, mean probability and revenue at risk of the cohort's members now,
        and their risk levels at the end of each of the last ``days`` days."""
        cohort = await self.get(tenant_id, cohort_id)
        where = cohort.filter.model_copy(deep=True)
        raw = await self._cohorts.stats(tenant_id, where)
        trend = await risk_trend(self._session, tenant_id, days, where=where)
        return CohortStats(cohort_id=cohort.id, name=cohort.name, trend=trend, **raw)


def _check_nesting(where: CustomerFilter) -> None:
    if where.segment is not None:
        raise UnprocessableError("A cohort's filter cannot name another cohort (segment).")
