"""Running file batch jobs: the upload onto disk, the queue in the database, worker processes
per job.

The API process only streams the upload into the job's directory (counting bytes and, for CSV,
lines: the limits answer 413 before anything is stored), pickles the tenant's model next to it
and records a ``queued`` row. A claim loop takes queued jobs, and running jobs whose runner has
been silent for ``job_lease_seconds`` (a replica that died), with one conditional UPDATE, and
hands each to a worker process (``python -m churn_prediction.batch_jobs.files``, kept for
``job_worker_idle_seconds`` after its last job, so that its imports are paid once): fastparquet
and the data never enter the API process. The worker's progress lines become the job's row and
``PredictionJobProgressV1`` events (at most every ``job_progress_interval_seconds``), which also
renew the lease.

A stop (shutdown, SIGTERM) ends the workers and puts their jobs back to ``queued``: the next
start of any replica runs them again from the start. A job the service stopped during
``job_max_attempts`` times is failed with that reason instead of looping for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import pickle
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.batch_jobs.schemas import (
    INPUTS,
    MODEL,
    RESULTS,
    SPEC,
    WORKER_LOG,
    FileFormat,
    JobSpec,
    PredictionJobRead,
)
from churn_prediction.batch_jobs.service import PredictionJobService
from churn_prediction.config import Settings
from churn_prediction.exceptions import InvalidJobFileError, JobFileTooLargeError
from churn_prediction.scoring.serving import ServingModel
from churn_shared.db import unit_of_work, utcnow
from churn_shared.logging import get_logger
from churn_shared.loops import PeriodicLoop

_log = get_logger(__name__)

#: Bytes written to disk at a time while an upload streams in.
_WRITE_BYTES = 1024 * 1024
PARQUET_MAGIC = b"PAR1"


class PredictionJobRunner:
    """Owns the jobs directory, the claim loop and the worker processes of one replica."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.factory = session_factory
        self.notify = notify
        self.jobs_dir = settings.prediction_jobs_dir
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: Worker processes waiting for a job, with the loop time they became idle.
        self.idle: list[tuple[asyncio.subprocess.Process, float]] = []
        self.loop = PeriodicLoop(
            "prediction-jobs",
            self.claim_jobs,
            interval_seconds=settings.job_poll_seconds,
            error_backoff_seconds=settings.job_poll_seconds,
        )

    def start(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.loop.start()

    async def stop(self) -> None:
        """End the claim loop and every worker; their jobs go back to ``queued``."""
        await self.loop.stop()
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._reap_idle(older_than=0)

    # -- upload -----------------------------------------------------------------------------

    async def submit(
        self,
        tenant_id: str,
        serving: ServingModel,
        body: AsyncIterator[bytes],
        *,
        input_format: FileFormat,
        id_column: str | None,
    ) -> PredictionJobRead:
        """Store the file, the model and the job's spec, record the job (committed), wake the
        claim loop."""
        job_id = str(uuid.uuid4())
        directory = self.jobs_dir / job_id
        await anyio.Path(directory).mkdir(parents=True)
        try:
            size, lines = await self._receive(body, directory / INPUTS[input_format], input_format)
            rows = None if input_format == "parquet" else max(lines - 1, 0)
            if rows is not None and rows > self.settings.max_job_rows:
                raise JobFileTooLargeError(
                    f"The file has {rows} rows; at most {self.settings.max_job_rows} per job."
                )
            await asyncio.to_thread(
                self._prepare, directory, serving, input_format, id_column, rows
            )
            async with unit_of_work(self.factory) as session:
                job = await PredictionJobService(session).create(
                    job_id=job_id,
                    tenant_id=tenant_id,
                    input_format=input_format,
                    input_bytes=size,
                    model_version=serving.version,
                    id_column=id_column,
                    rows_total=rows,
                )
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, directory, True)
            raise
        self._wake()
        _log.info("prediction_job_queued", job_id=job_id, bytes=size, format=input_format)
        return job

    async def _receive(
        self, body: AsyncIterator[bytes], path: Path, input_format: FileFormat
    ) -> tuple[int, int]:
        """Write the body to ``path`` as it arrives: its size and its number of lines (CSV)."""
        limit_rows = self.settings.max_job_rows
        size = 0
        lines = 0
        last = b""
        head = b""
        pending: list[bytes] = []
        pending_bytes = 0
        async with await anyio.open_file(path, "wb") as file:
            async for chunk in body:
                if not chunk:
                    continue
                size += len(chunk)
                if len(head) < 4:
                    head = (head + chunk)[:4]
                if input_format == "csv":
                    lines += chunk.count(b"\n")
                    # Early 413: far more lines than rows allowed (header, a last line).
                    if lines > limit_rows + 1:
                        raise JobFileTooLargeError(
                            f"The file has more than {limit_rows} rows; at most {limit_rows} "
                            "per job."
                        )
                last = chunk[-1:]
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= _WRITE_BYTES:
                    await file.write(b"".join(pending))
                    pending, pending_bytes = [], 0
            if pending:
                await file.write(b"".join(pending))
        if size == 0:
            raise InvalidJobFileError("The file is empty.")
        if input_format == "parquet" and head != PARQUET_MAGIC:
            raise InvalidJobFileError("The body is not a Parquet file (no PAR1 header).")
        if input_format == "csv" and last != b"\n":
            lines += 1
        return size, lines

    def _prepare(
        self,
        directory: Path,
        serving: ServingModel,
        input_format: FileFormat,
        id_column: str | None,
        rows: int | None,
    ) -> None:
        settings = self.settings
        with (directory / MODEL).open("wb") as handle:
            pickle.dump(serving.model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        JobSpec(
            input_format=input_format,
            id_column=id_column,
            low_risk_below=settings.low_risk_below,
            high_risk_from=settings.high_risk_from,
            max_rows=settings.max_job_rows,
            chunk_rows=settings.job_chunk_rows,
            max_error_rows=settings.job_max_error_rows,
            rows_hint=rows,
        ).write(directory)

    # -- the queue --------------------------------------------------------------------------

    def _wake(self) -> None:
        self.loop.notify()

    async def claim_jobs(self) -> None:
        """Take free jobs up to this replica's share and start them; end workers left idle."""
        await self._reap_idle(older_than=self.settings.job_worker_idle_seconds)
        free = self.settings.max_concurrent_jobs - len(self.tasks)
        if free <= 0:
            return
        stale_before = utcnow() - timedelta(seconds=self.settings.job_lease_seconds)
        async with unit_of_work(self.factory) as session:
            candidates = await PredictionJobService(session).claimable(stale_before, free)
        for job_id in candidates:
            async with unit_of_work(self.factory) as session:
                job = await PredictionJobService(session).claim(job_id, stale_before)
                attempts = job.attempts if job is not None else 0
            if job is None:
                continue
            self._notify()
            task = asyncio.create_task(self._run(job_id, attempts), name=f"prediction-job-{job_id}")
            self.tasks[job_id] = task
            task.add_done_callback(functools.partial(self._finished, job_id))

    def _finished(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self.tasks.pop(job_id, None)
        self._wake()  # a slot is free: look for the next job

    def _notify(self) -> None:
        if self.notify is not None:
            self.notify()

    async def _update(self, job_id: str, **changes: Any) -> None:
        async with unit_of_work(self.factory) as session:
            await PredictionJobService(session).update(job_id, **changes)
        self._notify()

    # -- one job ----------------------------------------------------------------------------

    async def _run(self, job_id: str, attempts: int) -> None:
        directory = self.jobs_dir / job_id
        if attempts > self.settings.job_max_attempts:
            await self._update(
                job_id,
                status="failed",
                error=(
                    f"The service stopped during this job {attempts - 1} times; it was given "
                    "up. Submit the file again."
                ),
            )
            return
        if not await anyio.Path(directory / SPEC).exists():
            await self._update(
                job_id, status="failed", error="The job's files are gone; submit the file again."
            )
            return
        try:
            await self._score(job_id, directory)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._update(job_id, status="queued", progress=0, rows_scored=0, rows_failed=0)
                )
            raise
        except Exception as exc:
            _log.warning("prediction_job_failed", job_id=job_id, error=repr(exc))
            await self._update(job_id, status="failed", error=f"The job failed: {exc!r}")

    async def _score(self, job_id: str, directory: Path) -> None:
        worker = await self._acquire()
        assert worker.stdin is not None
        assert worker.stdout is not None
        interval = self.settings.job_progress_interval_seconds
        latest: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        next_write = loop.time()
        ended = False
        try:
            worker.stdin.write(json.dumps({"score": str(directory)}).encode() + b"\n")
            await worker.stdin.drain()
            while True:
                try:
                    line = await asyncio.wait_for(worker.stdout.readline(), timeout=interval)
                except TimeoutError:
                    line = None
                if line == b"":
                    break  # the worker died
                if line:
                    with contextlib.suppress(ValueError):
                        latest = json.loads(line)
                    if "done" in latest or "error" in latest:
                        ended = True
                        break
                if loop.time() >= next_write:
                    # Written even without news: it renews the lease (heartbeat).
                    await self._update(job_id, status="running", **_counts(latest))
                    next_write = loop.time() + interval
        except BaseException:
            await _terminate(worker)
            raise
        if ended:
            self._release(worker)
        else:
            code = await worker.wait()
            tail = await _tail(self.jobs_dir / WORKER_LOG)
            await self._update(
                job_id,
                status="failed",
                error=f"The scoring process ended with code {code}: {tail}",
                **_counts(latest),
            )
            return
        if latest.get("done"):
            await self._update(job_id, status="succeeded", **{**_counts(latest), "progress": 100})
            _log.info("prediction_job_succeeded", job_id=job_id, **_counts(latest))
        else:
            await self._update(
                job_id, status="failed", error=str(latest["error"]), **_counts(latest)
            )

    async def csv_result(self, directory: Path) -> None:
        """Make the job's ``result.csv`` from its Parquet result (once; in a worker)."""
        if await anyio.Path(directory / RESULTS["csv"]).exists():
            return
        worker = await self._acquire()
        assert worker.stdin is not None
        assert worker.stdout is not None
        try:
            worker.stdin.write(json.dumps({"csv": str(directory)}).encode() + b"\n")
            await worker.stdin.drain()
            line = await worker.stdout.readline()
        except BaseException:
            await _terminate(worker)
            raise
        if not line:
            await worker.wait()
            raise RuntimeError("The job worker process ended while writing the CSV result.")
        self._release(worker)
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(str(answer["error"]))

    # -- job worker processes -------------------------------------------------------------

    async def _acquire(self) -> asyncio.subprocess.Process:
        """An idle worker process, or a new one (its imports take seconds, once)."""
        while self.idle:
            worker, _since = self.idle.pop()
            if worker.returncode is None:
                return worker
        log = await asyncio.to_thread((self.jobs_dir / WORKER_LOG).open, "ab")
        try:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "churn_prediction.batch_jobs.files",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        finally:
            log.close()

    def _release(self, worker: asyncio.subprocess.Process) -> None:
        self.idle.append((worker, asyncio.get_running_loop().time()))

    async def _reap_idle(self, *, older_than: float) -> None:
        """End the workers idle for longer than ``older_than`` seconds (0: all of them)."""
        now = asyncio.get_running_loop().time()
        keep: list[tuple[asyncio.subprocess.Process, float]] = []
        for worker, since in self.idle:
            if now - since >= older_than:
                await _terminate(worker)
            else:
                keep.append((worker, since))
        self.idle = keep


async def _terminate(worker: asyncio.subprocess.Process) -> None:
    if worker.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            worker.terminate()
        with contextlib.suppress(Exception):
            await asyncio.shield(worker.wait())


def _counts(line: dict[str, Any]) -> dict[str, Any]:
    """The job columns a progress line gives (progress: the share of rows read, below 100
    until the job is done)."""
    counts: dict[str, Any] = {
        key: int(line[key]) for key in ("rows_scored", "rows_failed") if key in line
    }
    total = line.get("rows_total")
    if total is not None:
        counts["rows_total"] = int(total)
        done = counts.get("rows_scored", 0) + counts.get("rows_failed", 0)
        counts["progress"] = min(99, int(100 * done / total)) if total else 0
    return counts


async def _tail(path: Path, size: int = 500) -> str:
    with contextlib.suppress(OSError):
        text = await anyio.Path(path).read_text(errors="replace")
        return text[-size:].strip() or "no output"
    return "no output"
