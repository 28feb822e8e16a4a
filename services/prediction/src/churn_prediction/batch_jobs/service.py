"""File batch jobs as records: queued on upload, read and their files located within the tenant,
moved along by the runner. Never commits."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.batch_jobs.repository import PredictionJobRepository
from churn_prediction.batch_jobs.schemas import PredictionJobRead
from churn_prediction.exceptions import PredictionJobNotDoneError, PredictionJobNotFoundError
from churn_prediction.models import PRODUCER, PredictionJob, outbox
from churn_shared.contracts import PredictionJobProgressV1
from churn_shared.db import utcnow
from churn_shared.kafka import Envelope, enqueue


class PredictionJobService:
    """Recording jobs, their progress (with its ``PredictionJobProgressV1`` event) and reads."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = PredictionJobRepository(session)

    async def create(
        self,
        *,
        job_id: str,
        tenant_id: str,
        input_format: str,
        input_bytes: int,
        model_version: str,
        id_column: str | None,
        rows_total: int | None,
        customers: dict[str, Any] | None = None,
        drivers: bool = False,
        held: bool = False,
    ) -> PredictionJobRead:
        """A queued job; ``customers``: a filter job's filter, as submitted; ``drivers``: top
        drivers are written beside each score; ``held``: not to be claimed while the caller
        prepares its input (a filter job's customers), which :meth:`update` with ``hold`` keeps
        renewing."""
        now = utcnow()
        job = await self.repository.add(
            PredictionJob(
                id=job_id,
                tenant_id=tenant_id,
                status="queued",
                input_format=input_format,
                input_bytes=input_bytes,
                model_version=model_version,
                id_column=id_column,
                rows_total=rows_total,
                customers=customers,
                drivers=drivers,
                heartbeat_at=now if held else None,
                created_at=now,
                updated_at=now,
            )
        )
        await self._publish(job)
        return job_read(job)

    async def get(self, tenant_id: str, job_id: str) -> PredictionJobRead:
        return job_read(await self._job(tenant_id, job_id))

    async def result_file(self, tenant_id: str, job_id: str, jobs_dir: Path, name: str) -> Path:
        """A file of a succeeded job (404 for another tenant's, 409 before it succeeded)."""
        job = await self._job(tenant_id, job_id)
        if job.status != "succeeded":
            raise PredictionJobNotDoneError(
                f"Prediction job {job_id!r} is {job.status}; results come once it succeeded."
            )
        return jobs_dir / job.id / name

    async def claimable(self, stale_before: datetime, limit: int) -> list[str]:
        return await self.repository.claimable(stale_before, limit)

    async def claim(self, job_id: str, stale_before: datetime) -> PredictionJob | None:
        """The job, now held by the caller, or ``None`` when another runner took it first."""
        if not await self.repository.claim(job_id, utcnow(), stale_before):
            return None
        job = await self.repository.by_id(job_id)
        if job is not None:
            await self.session.refresh(job)
            await self._publish(job)
        return job

    async def expire(self, cutoff: datetime, limit: int) -> list[str]:
        """Delete the rows of up to ``limit`` jobs finished before ``cutoff``; their ids (the
        caller removes their files once this commits)."""
        job_ids = await self.repository.finished_before(cutoff, limit)
        if job_ids:
            await self.repository.delete(job_ids)
        return job_ids

    async def unknown(self, job_ids: list[str]) -> list[str]:
        """Which of ``job_ids`` name no job."""
        known = await self.repository.existing(job_ids)
        return [job_id for job_id in job_ids if job_id not in known]

    async def update(
        self, job_id: str, *, publish: bool = True, hold: bool = False, **changes: Any
    ) -> None:
        """Write progress (and the runner's heartbeat); publish the new state. ``hold``: a
        queued job stays held (its input is still being read)."""
        job = await self.repository.by_id(job_id)
        if job is None:
            return
        now = utcnow()
        for key, value in changes.items():
            setattr(job, key, value)
        job.updated_at = now
        if job.status == "running" or (hold and job.status == "queued"):
            job.heartbeat_at = now
        elif job.status in ("succeeded", "failed"):
            job.finished_at = job.finished_at or now
            job.heartbeat_at = None
        else:
            job.heartbeat_at = None
        self.session.add(job)
        await self.session.flush()
        if publish:
            await self._publish(job)

    async def _job(self, tenant_id: str, job_id: str) -> PredictionJob:
        job = await self.repository.get(tenant_id, job_id)
        if job is None:
            raise PredictionJobNotFoundError(f"Prediction job {job_id!r} was not found.")
        return job

    async def _publish(self, job: PredictionJob) -> None:
        event = PredictionJobProgressV1.model_validate(
            {
                "job_id": job.id,
                "status": job.status,
                "progress": job.progress,
                "rows_total": job.rows_total,
                "rows_scored": job.rows_scored,
                "rows_failed": job.rows_failed,
                "error": job.error,
                "updated_at": job.updated_at,
            }
        )
        envelope = Envelope.wrap(
            tenant_id=job.tenant_id, producer=PRODUCER, payload=event, key=job.id
        )
        await enqueue(self.session, outbox, PredictionJobProgressV1.topic, [envelope])


def job_read(job: PredictionJob) -> PredictionJobRead:
    return PredictionJobRead.model_validate(
        {
            "job_id": job.id,
            "status": job.status,
            "input_format": job.input_format,
            "input_bytes": job.input_bytes,
            "model_version": job.model_version,
            "id_column": job.id_column,
            "customers": job.customers,
            "drivers": job.drivers,
            "progress": job.progress,
            "rows_total": job.rows_total,
            "rows_scored": job.rows_scored,
            "rows_failed": job.rows_failed,
            "attempts": job.attempts,
            "error": job.error,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "finished_at": job.finished_at,
        }
    )
