"""Background training jobs: fetch a training set from the customers service, train in a worker
thread, register the result as the tenant's challenger.

The runner is owned by the app's lifespan: every job is an asyncio task in its registry, and
``stop()`` cancels whatever still runs (the job is then marked failed). Training itself
(:func:`churn_prediction.training.procedure.train`) runs in ``asyncio.to_thread``, so the event
loop keeps serving; its progress callback only stores the latest (percent, stage), and the job's
task writes it to the database and the outbox (``TrainingProgressV1`` on ``model.training.v1``) at
most every ``training_progress_interval_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.clients import TrainingSetClient
from churn_prediction.config import Settings
from churn_prediction.exceptions import TrainingSetError
from churn_prediction.models import PRODUCER, outbox
from churn_prediction.registry.hot_reload import reload_tenant_models
from churn_prediction.registry.service import ModelRegistryService
from churn_prediction.scoring.serving import ServingModels
from churn_prediction.training.model import TrainedModel
from churn_prediction.training.procedure import train
from churn_prediction.training.sets import TrainingSet, labelled_training_set
from churn_prediction.training_jobs.repository import TrainingJobRepository
from churn_prediction.training_jobs.schemas import TrainingCreate, TrainingJobAccepted
from churn_prediction.training_jobs.service import TrainingJobService
from churn_shared.contracts import (
    ONLINE_FEATURE_SETS,
    CustomerTrainingSet,
    EventTrainingSet,
    TrainingProgressV1,
)
from churn_shared.db import unit_of_work, utcnow
from churn_shared.kafka import Envelope, enqueue
from churn_shared.logging import get_logger

_log = get_logger(__name__)


def events_training_set(parts: list[EventTrainingSet], horizon_days: int) -> TrainingSet:
    """Stack point-in-time sets (one per cutoff); ``groups_time`` makes CV time-ordered. Each
    part must list one of the online feature sets (``ONLINE_FEATURE_SETS``: a customers service
    of an older profile version lists fewer), all parts the same one."""
    frames: list[pd.DataFrame] = []
    labels: list[np.ndarray[Any, Any]] = []
    times: list[str] = []
    online = [list(names) for names in ONLINE_FEATURE_SETS.values()]
    first = list(parts[0].feature_names) if parts else []
    for part in parts:
        names = list(part.feature_names)
        if names not in online or names != first:
            raise TrainingSetError(
                f"The point-in-time set's features {names} are not one of the online feature "
                f"sets {online}; an events model must serve the online stream."
            )
        n = len(part.labels)
        if len(part.features) != n:
            raise TrainingSetError("The point-in-time set has a different number of rows/labels.")
        matrix = np.asarray(part.features, dtype=np.float64).reshape(n, len(names))
        frames.append(pd.DataFrame(matrix, columns=names))
        labels.append(np.asarray(part.labels, dtype=np.int64))
        times.extend([part.cutoff] * n)
    X = pd.concat(frames, ignore_index=True)
    y = np.concatenate(labels) if labels else np.empty(0, dtype=np.int64)
    if len(y) == 0:
        raise TrainingSetError("No customer had events before the cutoff(s): nothing to train on.")
    cutoffs = sorted(set(times))
    return TrainingSet(
        X=X,
        y=y,
        feature_names=first,
        categorical=[],
        groups_time=np.asarray(times) if len(cutoffs) > 1 else None,
        horizon_days=horizon_days,
        label_source=(
            f"no order_placed within {horizon_days} days after the cutoff "
            f"({', '.join(cutoffs)}); {int(y.sum())} of {len(y)} positive"
        ),
    )


def customers_frame(body: CustomerTrainingSet) -> tuple[pd.DataFrame, str | None]:
    frame = pd.DataFrame(body.rows, columns=body.columns)
    return frame, (body.id_column if body.id_column in body.columns else None)


class TrainingJobRunner:
    """Runs training jobs as tasks of the app; ``stop()`` cancels them."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        training_sets: TrainingSetClient,
        models: ServingModels,
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.factory = session_factory
        self.training_sets = training_sets
        self.models = models
        self.notify = notify
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def start(
        self, job_id: str, tenant_id: str, body: TrainingCreate, authorization: str | None
    ) -> None:
        task = asyncio.create_task(
            self._run(job_id, tenant_id, body, authorization), name=f"training-{job_id}"
        )
        self.tasks[job_id] = task
        task.add_done_callback(lambda _t: self.tasks.pop(job_id, None))

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _update(self, job_id: str, tenant_id: str, **changes: Any) -> None:
        now = utcnow()
        async with unit_of_work(self.factory) as session:
            job = await TrainingJobRepository(session).by_id(job_id)
            if job is None:
                return
            for key, value in changes.items():
                setattr(job, key, value)
            job.updated_at = now
            session.add(job)
            event = TrainingProgressV1.model_validate(
                {
                    "job_id": job.id,
                    "status": job.status,
                    "progress": job.progress,
                    "stage": job.stage,
                    "model_version": job.model_version,
                    "error": job.error,
                    "updated_at": now,
                }
            )
            envelope = Envelope.wrap(
                tenant_id=tenant_id,
                producer=PRODUCER,
                payload=event,
                key=job_id,
            )
            await enqueue(session, outbox, TrainingProgressV1.topic, [envelope])
        if self.notify is not None:
            self.notify()

    async def _run(
        self, job_id: str, tenant_id: str, body: TrainingCreate, authorization: str | None
    ) -> None:
        try:
            await self._update(
                job_id, tenant_id, status="running", progress=1, stage="fetching training set"
            )
            source, training_set = await self._fetch(body, authorization)
            await self._update(job_id, tenant_id, progress=5, stage="training")
            trained = await self._train(job_id, tenant_id, training_set)
            await self._update(job_id, tenant_id, progress=97, stage="registering")
            async with unit_of_work(self.factory) as session:
                registry = ModelRegistryService(session)
                version = await registry.register(tenant_id, trained, source=source, job_id=job_id)
            if self.notify is not None:
                self.notify()
            await reload_tenant_models(
                self.factory, self.models, tenant_id, self.settings.model_num_threads
            )
            await self._update(
                job_id,
                tenant_id,
                status="succeeded",
                progress=100,
                stage="done",
                model_version=version,
            )
            _log.info("training_job_succeeded", job_id=job_id, version=version)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._update(job_id, tenant_id, status="failed", error="cancelled at shutdown")
                )
            raise
        except Exception as exc:
            _log.warning("training_job_failed", job_id=job_id, error=repr(exc))
            message = str(exc) if isinstance(exc, TrainingSetError | ValueError) else repr(exc)
            await self._update(job_id, tenant_id, status="failed", stage="failed", error=message)

    async def _fetch(
        self, body: TrainingCreate, authorization: str | None
    ) -> tuple[dict[str, Any], TrainingSet]:
        if body.source == "events":
            cutoffs: list[date] = body.cutoff_list()
            parts = [
                await self.training_sets.event_training_set(
                    c.isoformat(), body.horizon_days, authorization=authorization
                )
                for c in cutoffs
            ]
            ts = await asyncio.to_thread(events_training_set, parts, body.horizon_days)
            source = {
                "source": "events",
                "cutoffs": [c.isoformat() for c in cutoffs],
                "horizon_days": body.horizon_days,
            }
            return source, ts
        label = body.label or ""
        data = await self.training_sets.customer_training_set(label, authorization=authorization)
        frame, id_column = await asyncio.to_thread(customers_frame, data)
        ts = await asyncio.to_thread(labelled_training_set, frame, label, id_column, body.features)
        source = {"source": "customers", "label": label, "features": ts.feature_names}
        return source, ts

    async def _train(self, job_id: str, tenant_id: str, ts: TrainingSet) -> TrainedModel:
        latest: list[tuple[float, str]] = []

        def progress(percent: float, stage: str) -> None:
            latest.append((percent, stage))  # list.append is atomic; read from the loop

        work = asyncio.ensure_future(
            asyncio.to_thread(train, ts, threshold=self.settings.high_risk_from, progress=progress)
        )
        written: tuple[int, str] | None = None
        interval = self.settings.training_progress_interval_seconds
        while True:
            done, _ = await asyncio.wait({work}, timeout=interval)
            if latest:
                percent, stage = latest[-1]
                # Training is 5..95 % of the job (fetching before, registering after).
                current = (min(95, 5 + int(percent * 0.9)), stage)
                if current != written:
                    await self._update(job_id, tenant_id, progress=current[0], stage=current[1])
                    written = current
            if done:
                return work.result()

    async def submit(
        self, tenant_id: str, body: TrainingCreate, *, authorization: str | None
    ) -> TrainingJobAccepted:
        """Record a queued job (committed at once) and start it right after."""
        async with unit_of_work(self.factory) as session:
            job = await TrainingJobService(session).create(tenant_id, body)
            job_id = job.id
        self.start(job_id, tenant_id, body, authorization)
        return TrainingJobAccepted(job_id=job_id)
