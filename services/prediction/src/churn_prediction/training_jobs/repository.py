"""SQL of training jobs. Never commits."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.models import TrainingJob


class TrainingJobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: TrainingJob) -> TrainingJob:
        self.session.add(job)
        await self.session.flush()
        return job

    async def get(self, tenant_id: str, job_id: str) -> TrainingJob | None:
        job = await self.session.get(TrainingJob, job_id)
        return job if job is not None and job.tenant_id == tenant_id else None

    async def by_id(self, job_id: str) -> TrainingJob | None:
        """Any tenant's job (the runner updates the jobs it started)."""
        return await self.session.get(TrainingJob, job_id)
