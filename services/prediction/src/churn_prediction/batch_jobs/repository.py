"""SQL of file batch jobs. Never commits."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.models import PredictionJob


class PredictionJobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: PredictionJob) -> PredictionJob:
        self.session.add(job)
        await self.session.flush()
        return job

    async def get(self, tenant_id: str, job_id: str) -> PredictionJob | None:
        job = await self.session.get(PredictionJob, job_id)
        return job if job is not None and job.tenant_id == tenant_id else None

    async def by_id(self, job_id: str) -> PredictionJob | None:
        """Any tenant's job (the runner updates the jobs it holds)."""
        return await self.session.get(PredictionJob, job_id)

    async def claimable(self, stale_before: datetime, limit: int) -> list[str]:
        """Jobs nobody holds: queued ones (but a filter job whose customers are still being
        read), and running ones whose runner went silent."""
        query = (
            select(PredictionJob.id)
            .where(
                sa.or_(
                    _free_queued(stale_before),
                    sa.and_(
                        col(PredictionJob.status) == "running",
                        col(PredictionJob.heartbeat_at) < stale_before,
                    ),
                )
            )
            .order_by(col(PredictionJob.created_at))
            .limit(limit)
        )
        return list((await self.session.exec(query)).all())

    async def claim(self, job_id: str, now: datetime, stale_before: datetime) -> bool:
        """Take the job if it is still free (one conditional UPDATE: of two runners, one wins)."""
        result = await self.session.exec(
            sa.update(PredictionJob)
            .where(
                col(PredictionJob.id) == job_id,
                sa.or_(
                    _free_queued(stale_before),
                    sa.and_(
                        col(PredictionJob.status) == "running",
                        col(PredictionJob.heartbeat_at) < stale_before,
                    ),
                ),
            )
            .values(
                status="running",
                heartbeat_at=now,
                updated_at=now,
                attempts=PredictionJob.attempts + 1,
            )
        )
        return bool(result.rowcount == 1)

    async def finished_before(self, cutoff: datetime, limit: int) -> list[str]:
        """Jobs that succeeded or failed before ``cutoff`` (oldest first)."""
        query = (
            select(PredictionJob.id)
            .where(
                col(PredictionJob.status).in_(("succeeded", "failed")),
                col(PredictionJob.finished_at) < cutoff,
            )
            .order_by(col(PredictionJob.finished_at))
            .limit(limit)
        )
        return list((await self.session.exec(query)).all())

    async def delete(self, job_ids: list[str]) -> int:
        result = await self.session.exec(
            sa.delete(PredictionJob).where(col(PredictionJob.id).in_(job_ids))
        )
        return int(result.rowcount)

    async def existing(self, job_ids: list[str]) -> set[str]:
        """Which of ``job_ids`` name a job."""
        query = select(PredictionJob.id).where(col(PredictionJob.id).in_(job_ids))
        return set((await self.session.exec(query)).all())


def _free_queued(stale_before: datetime) -> sa.ColumnElement[bool]:
    """A queued job nobody holds: a filter job's reader keeps ``heartbeat_at`` fresh until its
    input is complete (a reader that went silent leaves it to a runner, which fails it)."""
    return sa.and_(
        col(PredictionJob.status) == "queued",
        sa.or_(
            col(PredictionJob.heartbeat_at).is_(None),
            col(PredictionJob.heartbeat_at) < stale_before,
        ),
    )
