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

A filter job (a JSON body naming customers by the filters of ``GET /v1/customers``) is counted
at the customers service when it is submitted (a bad filter is a 422 then); the process that
took the request then reads the customers' profiles and attributes page by page
(``POST /v1/internal/scoring-inputs``, as the submitter: the caller's token stays in memory,
never on disk) into the job's ``input.csv``, holding the queued job meanwhile, and releases it
to the claim loop once the input is complete; from there it runs as a CSV job does and survives
restarts as one. A stop while the customers are being read fails the job with that reason (the
submitter's token is gone): submit it again.

The claim loop runs where the service's workers run (``run_workers``); an API process without
them only stores uploads, which the workers' replicas (sharing ``prediction_jobs_dir``) run.
The same loop deletes jobs ``job_retention_days`` after they finished, files and row
(:meth:`PredictionJobRunner.clean_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import io
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
import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.batch_jobs.schemas import (
    CUSTOMER_ID,
    INPUTS,
    MODEL,
    PARTIAL_INPUT,
    RESULTS,
    SPEC,
    UNSCORABLE_COLUMN,
    WORKER_LOG,
    FileFormat,
    JobSource,
    JobSpec,
    PredictionJobRead,
)
from churn_prediction.batch_jobs.service import PredictionJobService
from churn_prediction.clients import ScoringInputsClient
from churn_prediction.config import Settings
from churn_prediction.exceptions import (
    CustomerFilterRefusedError,
    CustomersUnavailableError,
    InvalidJobFileError,
    JobFileTooLargeError,
)
from churn_prediction.scoring.serving import ServingModel
from churn_shared.contracts import PROFILE_FEATURE_NAMES
from churn_shared.contracts.http import (
    CustomerScoringInput,
    ScoringInputsPage,
    ScoringInputsQuery,
)
from churn_shared.db import unit_of_work, utcnow
from churn_shared.logging import get_logger
from churn_shared.loops import PeriodicLoop

_log = get_logger(__name__)

#: Bytes written to disk at a time while an upload streams in.
_WRITE_BYTES = 1024 * 1024
PARQUET_MAGIC = b"PAR1"
#: Tries of one page of customers before a filter job fails, and the pause after the first.
_PAGE_TRIES = 3
_PAGE_RETRY_SECONDS = 1.0
#: Where a filter job's customers stop being read when the service stops.
STOPPED_WHILE_READING = (
    "The service stopped while it read this job's customers; submit the filter again."
)


class PredictionJobRunner:
    """Owns the jobs directory, the claim loop and the worker processes of one replica."""

    def __init__(
        self,
        *,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        notify: Callable[[], None] | None = None,
        scoring_inputs: ScoringInputsClient | None = None,
    ) -> None:
        self.settings = settings
        self.factory = session_factory
        self.notify = notify
        self.scoring_inputs = scoring_inputs
        self.jobs_dir = settings.prediction_jobs_dir
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: Filter jobs whose customers this process is reading (as their submitter).
        self.readers: dict[str, asyncio.Task[None]] = {}
        #: Worker processes waiting for a job, with the loop time they became idle.
        self.idle: list[tuple[asyncio.subprocess.Process, float]] = []
        self.loop = PeriodicLoop(
            "prediction-jobs",
            self.claim_jobs,
            interval_seconds=settings.job_poll_seconds,
            error_backoff_seconds=settings.job_poll_seconds,
        )
        #: Whether this process claims jobs (:meth:`start`); else a worker process it starts
        #: for a request (a CSV result) ends with that request.
        self.claiming = False
        #: Loop time of the next :meth:`clean_up` (the first comes with the first claim).
        self.next_cleanup = 0.0

    def start(self) -> None:
        """Claim and run jobs in this process (its workers: ``run_workers``)."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.claiming = True
        self.loop.start()

    async def stop(self) -> None:
        """End the claim loop and every worker; their jobs go back to ``queued``."""
        self.claiming = False
        await self.loop.stop()
        tasks = [*self.readers.values(), *self.tasks.values()]
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
        drivers: int = 0,
    ) -> PredictionJobRead:
        """Store the file, the model and the job's spec, record the job (committed), wake the
        claim loop. ``drivers``: top drivers written beside each score (0: none)."""
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
                self._prepare, directory, serving, input_format, id_column, rows, "file", drivers
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
                    drivers=drivers > 0,
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
        source: JobSource,
        drivers: int = 0,
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
            source=source,
            drivers=drivers,
        ).write(directory)

    # -- a filter ---------------------------------------------------------------------------

    async def submit_customers(
        self,
        tenant_id: str,
        serving: ServingModel,
        selection: dict[str, Any],
        *,
        authorization: str | None,
        drivers: int = 0,
    ) -> PredictionJobRead:
        """Count the customers ``selection`` matches (the customers service checks the filter:
        refused, a 422), record the job (committed, held), and read the customers into its
        input in the background as the caller."""
        if self.scoring_inputs is None:
            raise CustomersUnavailableError("No customers service is configured.")
        limit = self.settings.max_job_rows
        counted = await self.scoring_inputs.page(
            ScoringInputsQuery(filter=selection, limit=0, count_up_to=limit + 1),
            authorization=authorization,
        )
        total = counted.total or 0
        if total > limit:
            raise CustomerFilterRefusedError(
                f"The filter selects more than {limit} customers; at most {limit} per job. "
                "Narrow it."
            )
        job_id = str(uuid.uuid4())
        directory = self.jobs_dir / job_id
        await anyio.Path(directory).mkdir(parents=True)
        try:
            await asyncio.to_thread(
                self._prepare,
                directory,
                serving,
                "csv",
                CUSTOMER_ID,
                total,
                "customers",
                drivers,
            )
            async with unit_of_work(self.factory) as session:
                job = await PredictionJobService(session).create(
                    job_id=job_id,
                    tenant_id=tenant_id,
                    input_format="customers",
                    input_bytes=0,
                    model_version=serving.version,
                    id_column=CUSTOMER_ID,
                    rows_total=total,
                    customers=selection,
                    drivers=drivers > 0,
                    held=True,
                )
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, directory, True)
            raise
        reader = asyncio.create_task(
            self._read_customers(
                job_id, directory, list(serving.model.feature_names), selection, authorization
            ),
            name=f"prediction-job-customers-{job_id}",
        )
        self.readers[job_id] = reader
        reader.add_done_callback(lambda _task: self.readers.pop(job_id, None))
        _log.info("prediction_job_reading_customers", job_id=job_id, customers=total)
        return job

    async def _read_customers(
        self,
        job_id: str,
        directory: Path,
        feature_names: list[str],
        selection: dict[str, Any],
        authorization: str | None,
    ) -> None:
        """Page through the selection into ``input.csv`` (written as ``input.csv.partial`` and
        renamed once complete), renewing the job's hold; then release it to the claim loop."""
        assert self.scoring_inputs is not None
        interval = self.settings.job_progress_interval_seconds
        loop = asyncio.get_running_loop()
        next_write = loop.time() + interval
        reads_profile = any(name in PROFILE_FEATURE_NAMES for name in feature_names)
        partial = directory / PARTIAL_INPUT
        read = 0
        try:
            handle = await anyio.open_file(partial, "w", newline="")
            async with handle:
                await handle.write(_csv_text([[CUSTOMER_ID, *feature_names, UNSCORABLE_COLUMN]]))
                after: str | None = None
                while True:
                    page = await self._page(
                        ScoringInputsQuery(filter=selection, after=after), authorization
                    )
                    read += len(page.customers)
                    if read > self.settings.max_job_rows:
                        raise CustomerFilterRefusedError(
                            f"More than {self.settings.max_job_rows} customers match the "
                            "filter now; narrow it."
                        )
                    rows = [
                        customer_input_row(customer, feature_names, reads_profile)
                        for customer in page.customers
                    ]
                    await handle.write(_csv_text(rows))
                    if page.next_after is None:
                        break
                    after = page.next_after
                    if loop.time() >= next_write:
                        await self._hold(job_id)
                        next_write = loop.time() + interval
            spec = await asyncio.to_thread(JobSpec.read, directory)
            await asyncio.to_thread(
                JobSpec(**{**_fields(spec), "rows_hint": read}).write, directory
            )
            await anyio.Path(partial).rename(directory / INPUTS["csv"])
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._update(job_id, status="failed", error=STOPPED_WHILE_READING)
                )
            raise
        except Exception as exc:
            _log.warning("prediction_job_customers_failed", job_id=job_id, error=repr(exc))
            await self._update(
                job_id, status="failed", error=f"The customers could not be read: {exc}"
            )
            return
        # Released: the claim loop (here or on a workers' replica) runs it as a CSV job.
        await self._update(job_id, status="queued", rows_total=read)
        self._wake()

    async def _page(
        self, query: ScoringInputsQuery, authorization: str | None
    ) -> ScoringInputsPage:
        """One page, tried again after a pause while the customers service is unavailable."""
        assert self.scoring_inputs is not None
        attempt = 1
        while True:
            try:
                return await self.scoring_inputs.page(query, authorization=authorization)
            except CustomersUnavailableError:
                if attempt >= _PAGE_TRIES:
                    raise
                await asyncio.sleep(_PAGE_RETRY_SECONDS * attempt)
                attempt += 1

    async def _hold(self, job_id: str) -> None:
        async with unit_of_work(self.factory) as session:
            await PredictionJobService(session).update(job_id, publish=False, hold=True)

    # -- the queue --------------------------------------------------------------------------

    def _wake(self) -> None:
        self.loop.notify()

    async def claim_jobs(self) -> None:
        """Take free jobs up to this replica's share and start them; end workers left idle;
        delete expired jobs when it is time."""
        await self._reap_idle(older_than=self.settings.job_worker_idle_seconds)
        now = asyncio.get_running_loop().time()
        if now >= self.next_cleanup:
            self.next_cleanup = now + self.settings.job_cleanup_interval_seconds
            await self.clean_up()
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

    async def clean_up(self, *, batch: int = 500) -> int:
        """Delete the jobs that finished ``job_retention_days`` ago or earlier: their rows, then
        (once that committed) their directories; and directories as old that no row names (an
        upload a crash cut short, a deletion a crash interrupted). How many jobs went."""
        cutoff = utcnow() - timedelta(days=self.settings.job_retention_days)
        removed = 0
        while True:
            async with unit_of_work(self.factory) as session:
                expired = await PredictionJobService(session).expire(cutoff, batch)
            for job_id in expired:
                await asyncio.to_thread(shutil.rmtree, self.jobs_dir / job_id, True)
            removed += len(expired)
            if len(expired) < batch:
                break
        old = await asyncio.to_thread(_directories_older_than, self.jobs_dir, cutoff.timestamp())
        for start in range(0, len(old), batch):
            async with unit_of_work(self.factory) as session:
                orphans = await PredictionJobService(session).unknown(old[start : start + batch])
            for name in orphans:
                await asyncio.to_thread(shutil.rmtree, self.jobs_dir / name, True)
        if removed:
            _log.info("prediction_jobs_expired", jobs=removed)
        return removed

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
        """Run a claimed job. A stop at any point after the claim (SIGTERM, a deploy) puts it
        back in the queue at once, not only once it is scoring: otherwise it stayed "running"
        until its lease ran out."""
        try:
            await self._attempt(job_id, attempts)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self._update(job_id, status="queued", progress=0, rows_scored=0, rows_failed=0)
                )
            raise

    async def _attempt(self, job_id: str, attempts: int) -> None:
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
        spec = await asyncio.to_thread(JobSpec.read, directory)
        if spec.source == "customers" and not await anyio.Path(directory / INPUTS["csv"]).exists():
            # Its reader (the process that took the request) went silent before it finished.
            await self._update(job_id, status="failed", error=STOPPED_WHILE_READING)
            return
        try:
            await self._score(job_id, directory)
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
                # ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` drops a
                # cancellation that arrives as the line does, and the job ran on after a stop.
                line: bytes | None = None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        line = await worker.stdout.readline()
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
            await self._release(worker)
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
        await self._release(worker)
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

    async def _release(self, worker: asyncio.subprocess.Process) -> None:
        """Keep ``worker`` for the next job; end it in a process that claims none (nothing
        would end it once idle)."""
        if self.claiming:
            self.idle.append((worker, asyncio.get_running_loop().time()))
        else:
            await _terminate(worker)

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


def _directories_older_than(jobs_dir: Path, timestamp: float) -> list[str]:
    """Names of the job directories last modified before ``timestamp``."""
    try:
        entries = list(jobs_dir.iterdir())
    except FileNotFoundError:
        return []
    names: list[str] = []
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir() and entry.stat().st_mtime < timestamp:
                names.append(entry.name)
    return names


def _fields(spec: JobSpec) -> dict[str, Any]:
    return {name: getattr(spec, name) for name in spec.__dataclass_fields__}


def _csv_text(rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def customer_input_row(
    customer: CustomerScoringInput, feature_names: list[str], reads_profile: bool
) -> list[Any]:
    """A filter job's input row: the customer's id, each feature the model reads (from the
    profile when it has that name, else from the imported attributes) and why the customer
    cannot be scored (no value for any feature), or nothing."""
    profile = customer.features
    values: list[Any] = []
    for name in feature_names:
        value: Any = profile[name] if profile is not None and name in profile else None
        if value is None:
            value = customer.attributes.get(name)
        if isinstance(value, list | dict):
            value = orjson.dumps(value).decode()
        values.append(value)
    reason = None
    if all(value is None or value == "" for value in values):
        reason = (
            "no feature profile yet (no events recorded)"
            if profile is None and reads_profile
            else "no value for any of the model's features"
        )
    return [customer.customer_id, *values, reason]


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
