"""Training jobs as records: queued on submission, read by id within the tenant."""

from __future__ import annotations

import uuid

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.exceptions import TrainingJobNotFoundError
from churn_prediction.models import TrainingJob
from churn_prediction.training_jobs.repository import TrainingJobRepository
from churn_prediction.training_jobs.schemas import TrainingCreate, TrainingJobRead
from churn_shared.db import utcnow


class TrainingJobService:
    """Recording training jobs and reading their state (the runner moves them along)."""

    def __init__(self, session: AsyncSession) -> None:
        self.repository = TrainingJobRepository(session)

    async def create(self, tenant_id: str, body: TrainingCreate) -> TrainingJob:
        now = utcnow()
        return await self.repository.add(
            TrainingJob(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                status="queued",
                progress=0,
                stage="queued",
                request=body.model_dump(mode="json", exclude_none=True),
                created_at=now,
                updated_at=now,
            )
        )

    async def get(self, tenant_id: str, job_id: str) -> TrainingJobRead:
        job = await self.repository.get(tenant_id, job_id)
        if job is None:
            raise TrainingJobNotFoundError(f"Training job {job_id!r} was not found.")
        return job_read(job)


def job_read(job: TrainingJob) -> TrainingJobRead:
    return TrainingJobRead.model_validate(
        {
            "job_id": job.id,
            "status": job.status,
            "progress": job.progress,
            "stage": job.stage,
            "model_version": job.model_version,
            "error": job.error,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
        }
    )
