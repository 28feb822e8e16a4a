"""Customer file imports as durable jobs.

* :class:`ImportService` (the request): the upload streams into the imports directory (hashed
  on the way), is checked — format, encoding, zip directory, header and column mapping, row
  and byte limits — and recorded ``queued`` with the same transaction's
  ``CustomerImportProgressV1``. An upload of a file (and mapping) the tenant already imported,
  or with an ``Idempotency-Key`` it already used, returns the existing import instead.
* :class:`ImportRunner` (every API process): a claim loop takes queued imports, and running
  ones whose runner stopped renewing them (its process died), with one conditional UPDATE, and
  only those whose file this process can see. An import first counts the file's rows (a
  file-level problem fails it before anything is written), then writes it in batches: each
  batch's customers (with one ``CustomerAttributesChangedV1`` each), rejected rows, counts and
  ``processed_rows`` commit together, so an interrupted import resumes after the last
  committed batch (and publishes no customer twice). A stop puts running imports
  back to ``queued``; an import the service stopped during ``import_max_attempts`` times, or
  whose file is gone, is failed with that reason — none stays ``running``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import hashlib
import io
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.attributes import publish_attributes_changed
from churn_customers.exceptions import (
    ImportKeyInFlightError,
    ImportNotFoundError,
    ImportTooLargeError,
    UnsupportedMediaTypeError,
)
from churn_customers.exporting import neutralise
from churn_customers.importing import (
    MAX_REPORTED_ERRORS,
    Batch,
    ColumnMapping,
    CsvEncodingError,
    CsvFileError,
    FileFormat,
    MappingError,
    MultipartError,
    ReadLimits,
    SpooledUpload,
    SpreadsheetFileError,
    UploadTooLargeError,
    XlsxFileError,
    ZipBombError,
    ZipLimits,
    check_header,
    count_rows,
    inspect_csv,
    inspect_xlsx,
    parse_mapping,
    read_batches,
    receive_form,
    sniff_format,
)
from churn_customers.models import outbox
from churn_customers.repository import CustomerRepository, ImportRepository
from churn_customers.schemas import ImportRead
from churn_shared.contracts import CustomerImportProgressV1
from churn_shared.db import is_transient, unit_of_work, utcnow
from churn_shared.errors import (
    PayloadTooLargeError,
    TooManyRequestsError,
    UnprocessableError,
)
from churn_shared.kafka import Envelope, enqueue
from churn_shared.logging import get_logger
from churn_shared.loops import PeriodicLoop

_log = get_logger(__name__)

#: ``Retry-After`` of a 429 for a tenant that has ``max_concurrent`` imports in flight.
IMPORT_RETRY_AFTER_SECONDS = 30
#: Longest ``Idempotency-Key``, and what it may hold (visible ASCII).
MAX_IDEMPOTENCY_KEY = 255
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
#: Rows of the error report read per transaction while it streams.
ERROR_REPORT_PAGE = 1_000
_UPLOAD_PREFIX = ".upload-"


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What one upload may cost (``None``: unlimited)."""

    max_bytes: int | None = None
    max_rows: int | None = None
    #: Imports of one tenant queued or running at once.
    max_concurrent: int | None = None
    #: A queued or running import older than this no longer counts towards ``max_concurrent``.
    stale_after: timedelta = timedelta(hours=1)
    max_cell_chars: int = 32_767
    max_error_rows: int = 10_000
    zip: ZipLimits = field(default_factory=ZipLimits)


def import_read(row: Any) -> ImportRead:
    """The API shape of a ``customer_imports`` row."""
    data = dict(row._mapping)
    counted = not (
        data.get("file_format") == "xlsx"
        and data["status"] in ("queued", "running")
        and not data.get("rows_total")
        and not data.get("processed_rows")
    )
    return ImportRead.model_validate(
        {
            **data,
            "import_id": data["id"],
            "total_rows": data["rows_total"] if counted else None,
        }
    )


def progress_event(row: Any) -> Envelope:
    """``CustomerImportProgressV1`` of an import row, wrapped for its tenant."""
    read = import_read(row)
    total = read.total_rows
    if read.status == "succeeded":
        progress = 100
    elif total:
        progress = min(99, int(100 * read.processed_rows / total))
    else:
        progress = 0
    event = CustomerImportProgressV1(
        import_id=read.import_id,
        status=read.status,
        progress=progress,
        total_rows=total,
        processed_rows=read.processed_rows,
        rows_imported=read.rows_imported,
        rows_rejected=read.rows_rejected,
        failure=read.failure,
        updated_at=utcnow(),
    )
    return Envelope.wrap(
        tenant_id=row.tenant_id, producer="customers", payload=event, key=read.import_id
    )


async def publish_progress(session: AsyncSession, tenant_id: str, import_id: str) -> None:
    """Enqueue the import's current state on the outbox, in the caller's transaction."""
    row = await ImportRepository(session).get(tenant_id, import_id)
    if row is not None:
        await enqueue(session, outbox, CustomerImportProgressV1.topic, [progress_event(row)])


def _spreadsheet_refused(message: str) -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(message)


@dataclass(slots=True)
class StartedImport:
    read: ImportRead
    #: ``False``: an earlier import of this file or key was returned.
    created: bool


class ImportService:
    """Customer file uploads: checked and recorded in the request, imported by a runner."""

    def __init__(
        self, session: AsyncSession, *, imports_dir: Path, limits: ImportLimits | None = None
    ) -> None:
        self._session = session
        self._imports = ImportRepository(session)
        self._dir = imports_dir
        self._limits = limits or ImportLimits()

    async def start_import(
        self,
        tenant_id: str,
        subject: str | None,
        content_type: str,
        body: AsyncIterator[bytes],
        *,
        idempotency_key: str | None = None,
    ) -> StartedImport:
        """Read the multipart body (``file``, ``mapping`` or ``id_column``) into the imports
        directory, return an earlier import of the same file and mapping (or key), else
        refuse what cannot be imported (415 unreadable formats, 413 too many bytes or rows,
        422 undecodable text, a bad mapping or form, a zip bomb, 429 too many imports in
        flight) with nothing stored, or record the import as queued."""
        limits = self._limits
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise UnprocessableError(
                f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters."
            )
        await asyncio.to_thread(self._dir.mkdir, parents=True, exist_ok=True)
        spool_path = self._dir / f"{_UPLOAD_PREFIX}{uuid.uuid4().hex}"
        try:
            form = await receive_form(
                body,
                content_type,
                max_file_bytes=limits.max_bytes,
                open_spool=lambda: spool_path.open("w+b"),
            )
        except MultipartError as exc:
            await _remove(spool_path)
            raise UnprocessableError(f"Send the file as multipart/form-data: {exc}.") from exc
        except UploadTooLargeError as exc:
            await _remove(spool_path)
            raise ImportTooLargeError(exc.limit) from exc
        upload = form.file
        if upload is None:
            await _remove(spool_path)
            raise UnprocessableError("Send the customer file in a multipart form field 'file'.")
        kept = False
        try:
            try:
                mapping = parse_mapping(form.fields.get("mapping"), form.fields.get("id_column"))
            except MappingError as exc:
                raise UnprocessableError(f"The column mapping is not usable: {exc}.") from exc
            content_key = hashlib.sha256(
                upload.sha256.digest()
                + orjson.dumps(mapping.as_json(), option=orjson.OPT_SORT_KEYS)
            ).hexdigest()
            existing = await self._existing(tenant_id, idempotency_key, content_key)
            if existing is not None:
                return StartedImport(import_read(existing), created=False)
            file_format, encoding, rows = await self._inspect(upload, mapping)
            import_id = str(uuid.uuid4())
            now = utcnow()
            row: dict[str, Any] = {
                "id": import_id,
                "tenant_id": tenant_id,
                "status": "queued",
                "filename": (upload.filename or "")[:255] or None,
                "id_column": mapping.id[:255],
                "rows_total": rows or 0,
                "rows_imported": 0,
                "rows_rejected": 0,
                "errors": [],
                "created_by": (subject or "")[:64] or None,
                "created_at": now,
                "file_format": file_format,
                "encoding": encoding,
                "mapping": mapping.as_json(),
                "file_bytes": upload.size,
                "content_key": content_key,
                "idempotency_key": idempotency_key,
                "processed_rows": 0,
                "attempts": 0,
            }
            # In the caller's transaction: the request's unit of work commits it before the
            # response, so before a runner can see it.
            try:
                if limits.max_concurrent is None:
                    await self._imports.add(row)
                    added = True
                else:
                    added = await self._imports.add_if_fewer_active(
                        row, limit=limits.max_concurrent, active_since=now - limits.stale_after
                    )
            except IntegrityError as exc:
                # Only the (tenant, Idempotency-Key) pair is unique: a concurrent upload with
                # the same key inserted first (the look-up above ran before it committed).
                raise ImportKeyInFlightError() from exc
            if not added:
                raise TooManyRequestsError(
                    f"This tenant already has {limits.max_concurrent} customer imports "
                    "queued or running; retry when one has finished.",
                    headers={"Retry-After": str(IMPORT_RETRY_AFTER_SECONDS)},
                )
            await publish_progress(self._session, tenant_id, import_id)
            await asyncio.to_thread(upload.close)
            await asyncio.to_thread(os.replace, spool_path, self._dir / import_id)
            kept = True
            stored = await self._imports.get(tenant_id, import_id)
            return StartedImport(import_read(stored), created=True)
        finally:
            if not kept:
                await asyncio.to_thread(upload.close)
                await _remove(spool_path)

    async def _existing(
        self, tenant_id: str, idempotency_key: str | None, content_key: str
    ) -> Any | None:
        if idempotency_key is not None:
            earlier = await self._imports.by_idempotency_key(tenant_id, idempotency_key)
            if earlier is not None:
                if earlier.content_key != content_key:
                    raise UnprocessableError(
                        "This Idempotency-Key was used for another file or column mapping; "
                        "use a new key for a new upload."
                    )
                return earlier
        return await self._imports.by_content(tenant_id, content_key)

    async def _inspect(
        self, upload: SpooledUpload, mapping: ColumnMapping
    ) -> tuple[FileFormat, str | None, int | None]:
        """The file's format, encoding (CSV) and rows (CSV; XLSX rows are counted by the
        runner), or the problem that refuses it."""
        limits = self._limits
        head = await asyncio.to_thread(_head, upload.file)
        try:
            file_format = sniff_format(head, upload.filename, upload.content_type)
        except SpreadsheetFileError as exc:
            raise _spreadsheet_refused(str(exc)) from exc
        if file_format == "xlsx":
            try:
                summary = await asyncio.to_thread(inspect_xlsx, upload.file, limits.zip)
            except ZipBombError as exc:
                raise PayloadTooLargeError(
                    f"The workbook was refused before it was read: {exc}. Save the sheet as "
                    "CSV (UTF-8) and upload that."
                ) from exc
            except XlsxFileError as exc:
                raise UnprocessableError(f"The workbook cannot be read: {exc}.") from exc
            header, rows, encoding = summary.header, None, None
            if (
                limits.max_rows is not None
                and summary.declared_rows is not None
                and summary.declared_rows > limits.max_rows
            ):
                raise _too_many_rows(limits.max_rows)
        else:
            try:
                csv_summary = await asyncio.to_thread(inspect_csv, upload.file, limits.max_rows)
            except SpreadsheetFileError as exc:
                raise _spreadsheet_refused(
                    "The file is a spreadsheet that is not read here (XLS, ODS); save it as "
                    "XLSX or CSV (UTF-8)."
                ) from exc
            except CsvEncodingError as exc:
                raise UnprocessableError(str(exc)) from exc
            if csv_summary.too_many_rows:
                raise _too_many_rows(limits.max_rows)
            header, rows, encoding = (
                csv_summary.header,
                csv_summary.rows,
                csv_summary.encoding_label,
            )
        try:
            check_header(header)
            mapping.resolve(header)
        except (CsvFileError, MappingError) as exc:
            raise UnprocessableError(f"The file's header does not fit: {exc}.") from exc
        return file_format, encoding, rows

    async def get_import(self, tenant_id: str, import_id: str) -> ImportRead:
        row = await self._imports.get(tenant_id, import_id)
        if row is None:
            raise ImportNotFoundError(import_id)
        return import_read(row)


def _too_many_rows(limit: int | None) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"A customer file holds at most {limit} rows; this one has more. "
        "Nothing was imported; split the file and upload the parts one by one."
    )


def _head(file: IO[bytes]) -> bytes:
    file.seek(0)
    head = file.read(8)
    file.seek(0)
    return head


async def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await asyncio.to_thread(path.unlink)


# --------------------------------------------------------------------------- error report

ERROR_REPORT_HEADER = ("line", "column", "value", "reason")


async def error_report(
    session_factory: async_sessionmaker[AsyncSession], tenant_id: str, import_id: str
) -> AsyncIterator[bytes]:
    """The import's rejected rows as UTF-8 CSV (with a BOM), a page per read transaction; text
    a spreadsheet would run as a formula is neutralised as in the export."""
    yield "\ufeff".encode() + _csv_rows([ERROR_REPORT_HEADER])
    after = 0
    while True:
        async with unit_of_work(session_factory) as session:
            page = await ImportRepository(session).errors_page(
                tenant_id, import_id, after, ERROR_REPORT_PAGE
            )
        if not page:
            return
        yield _csv_rows(
            [
                r.line,
                neutralise(r.column or ""),
                neutralise(r.value or ""),
                neutralise(r.reason),
            ]
            for r in page
        )
        after = page[-1].line


def _csv_rows(rows: Any) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


# --------------------------------------------------------------------------- the runner


class LostImportError(Exception):
    """Another runner took the import over (this one stopped renewing it in time)."""


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    imports_dir: Path
    workers: int = 1
    poll_seconds: float = 2.0
    lease_seconds: float = 60.0
    max_attempts: int = 3
    progress_interval_seconds: float = 1.0
    #: A queued import whose file this process cannot see is failed once it is this old.
    orphan_after: timedelta = timedelta(hours=1)
    read: ReadLimits = field(default_factory=ReadLimits)
    max_error_rows: int = 10_000


class ImportRunner:
    """The claim loop and the running imports of one process."""

    def __init__(
        self,
        settings: RunnerSettings,
        session_factory: async_sessionmaker[AsyncSession],
        notify: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.factory = session_factory
        self.notify = notify
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.loop = PeriodicLoop(
            "customer-imports",
            self.claim_imports,
            interval_seconds=settings.poll_seconds,
            error_backoff_seconds=settings.poll_seconds,
        )

    def start(self) -> None:
        try:
            self.settings.imports_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _log.error(
                "customer_imports_dir_unusable", path=str(self.settings.imports_dir), error=str(exc)
            )
            return
        self.loop.start()

    def wake(self) -> None:
        self.loop.notify()

    async def stop(self) -> None:
        """End the claim loop and the running imports; they go back to ``queued`` (and resume
        after their committed rows on the next start of any replica)."""
        await self.loop.stop()
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _notify(self) -> None:
        if self.notify is not None:
            self.notify()

    async def claim_imports(self) -> None:
        free = self.settings.workers - len(self.tasks)
        if free <= 0:
            return
        now = utcnow()
        stale_before = now - timedelta(seconds=self.settings.lease_seconds)
        async with unit_of_work(self.factory) as session:
            candidates = await ImportRepository(session).claimable(stale_before, 50)
        for candidate in candidates:
            if free <= 0:
                break
            if candidate.id in self.tasks:
                continue
            path = self.settings.imports_dir / candidate.id
            if not await asyncio.to_thread(path.exists):
                if candidate.created_at < now - self.settings.orphan_after:
                    await self._fail_orphan(candidate, stale_before)
                continue
            async with unit_of_work(self.factory) as session:
                attempt = await ImportRepository(session).claim(candidate.id, now, stale_before)
            if attempt is None:
                continue
            free -= 1
            task = asyncio.create_task(
                self._run(candidate.tenant_id, candidate.id, attempt),
                name=f"customer-import-{candidate.id}",
            )
            self.tasks[candidate.id] = task
            task.add_done_callback(functools.partial(self._finished, candidate.id))

    def _finished(self, import_id: str, _task: asyncio.Task[None]) -> None:
        self.tasks.pop(import_id, None)
        self.wake()

    async def _fail_orphan(self, candidate: Any, stale_before: datetime) -> None:
        async with unit_of_work(self.factory) as session:
            imports = ImportRepository(session)
            attempt = await imports.claim(candidate.id, utcnow(), stale_before)
            if attempt is None:
                return
            await imports.update_held(
                candidate.id,
                attempt,
                status="failed",
                failure=(
                    "The uploaded file is gone (the service restarted without the volume "
                    "it was stored on); upload it again."
                ),
                finished_at=utcnow(),
            )
            await publish_progress(session, candidate.tenant_id, candidate.id)
        self._notify()
        _log.warning("customer_import_file_gone", import_id=candidate.id)

    async def _run(self, tenant_id: str, import_id: str, attempt: int) -> None:
        path = self.settings.imports_dir / import_id
        heartbeat = asyncio.create_task(self._heartbeat(import_id, attempt))
        try:
            if attempt > self.settings.max_attempts:
                await self._finish(
                    tenant_id,
                    import_id,
                    attempt,
                    failure=(
                        f"The service stopped during this import {attempt - 1} times; it was "
                        "given up. The rows it had processed are stored; upload the file "
                        "again to import the rest."
                    ),
                )
                return
            await self._import(tenant_id, import_id, attempt, path)
        except asyncio.CancelledError:
            await _stop(heartbeat)  # before the requeue: no transaction of its own left open
            try:
                await asyncio.shield(self._requeue(import_id, attempt))
            except Exception:
                _log.exception("customer_import_requeue_failed", import_id=import_id)
            raise
        except LostImportError:
            _log.warning("customer_import_taken_over", import_id=import_id)
            return
        except Exception as exc:
            if is_transient(exc):
                _log.warning("customer_import_interrupted", import_id=import_id, error=repr(exc))
                with contextlib.suppress(Exception):
                    await self._requeue(import_id, attempt)
                return
            _log.exception("customer_import_failed", import_id=import_id, tenant_id=tenant_id)
            with contextlib.suppress(Exception):
                await self._finish(
                    tenant_id, import_id, attempt, failure="internal error while importing"
                )
        finally:
            await _stop(heartbeat)

    async def _heartbeat(self, import_id: str, attempt: int) -> None:
        """Renew the lease while the import runs (its batches renew it too)."""
        interval = max(self.settings.lease_seconds / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await _uninterrupted(self._renew(import_id, attempt))

    async def _renew(self, import_id: str, attempt: int) -> None:
        async with unit_of_work(self.factory) as session:
            await ImportRepository(session).update_held(import_id, attempt, heartbeat_at=utcnow())

    async def _requeue(self, import_id: str, attempt: int) -> None:
        for retry in range(5):
            try:
                async with unit_of_work(self.factory) as session:
                    await ImportRepository(session).update_held(
                        import_id, attempt, status="queued", heartbeat_at=None
                    )
                return
            except Exception as exc:
                if retry == 4 or not is_transient(exc):
                    raise
                await asyncio.sleep(0.1 * (retry + 1))

    async def _finish(
        self, tenant_id: str, import_id: str, attempt: int, *, failure: str | None, **counts: Any
    ) -> None:
        async with unit_of_work(self.factory) as session:
            held = await ImportRepository(session).update_held(
                import_id,
                attempt,
                status="failed" if failure else "succeeded",
                failure=failure,
                finished_at=utcnow(),
                **counts,
            )
            if not held:
                raise LostImportError(import_id)
            await publish_progress(session, tenant_id, import_id)
        self._notify()
        await _remove(self.settings.imports_dir / import_id)

    async def _import(self, tenant_id: str, import_id: str, attempt: int, path: Path) -> None:
        async with unit_of_work(self.factory) as session:
            row = await ImportRepository(session).by_id(import_id)
        if row is None:  # pragma: no cover - claimed a moment ago
            return
        settings = self.settings
        mapping = ColumnMapping(
            **{
                **(row.mapping or {"id": row.id_column}),
                "attributes": (
                    tuple(row.mapping["attributes"])
                    if row.mapping and row.mapping.get("attributes") is not None
                    else None
                ),
            }
        )
        file_format: FileFormat = "xlsx" if row.file_format == "xlsx" else "csv"
        encoding = {"windows-1252": "cp1252"}.get(row.encoding or "", "utf-8-sig")
        file = await asyncio.to_thread(path.open, "rb")
        try:
            processed = row.processed_rows
            if processed == 0:
                # Every row is read once before any is written: a file-level problem fails the
                # import with nothing stored.
                try:
                    total = await asyncio.to_thread(
                        count_rows, file, file_format, encoding, settings.read.max_rows
                    )
                except CsvFileError as exc:
                    await self._finish(tenant_id, import_id, attempt, failure=str(exc))
                    return
                async with unit_of_work(self.factory) as session:
                    if not await ImportRepository(session).update_held(
                        import_id, attempt, rows_total=total, heartbeat_at=utcnow()
                    ):
                        raise LostImportError(import_id)
                    await publish_progress(session, tenant_id, import_id)
                self._notify()
            state = _Progress(
                processed=processed,
                imported=row.rows_imported,
                rejected=row.rows_rejected,
                shown=list(row.errors or []),
            )
            batches = read_batches(
                file, file_format, encoding, mapping, settings.read, skip_rows=processed
            )
            loop = asyncio.get_running_loop()
            next_event = loop.time() + settings.progress_interval_seconds
            try:
                while (batch := await _next_batch(batches)) is not None:
                    publish = loop.time() >= next_event
                    # A stop waits for the batch's transaction: never cut off mid-way.
                    await _uninterrupted(
                        self._write(tenant_id, import_id, attempt, batch, state, publish)
                    )
                    if publish:
                        next_event = loop.time() + settings.progress_interval_seconds
                        self._notify()
            except CsvFileError as exc:  # the file changed since it was counted
                await self._finish(tenant_id, import_id, attempt, failure=str(exc))
                return
            finally:
                with contextlib.suppress(ValueError):  # still running in its thread
                    batches.close()
        finally:
            await asyncio.to_thread(file.close)
        await self._finish(
            tenant_id,
            import_id,
            attempt,
            failure=None,
            rows_total=state.processed,
        )
        _log.info(
            "customers_imported",
            import_id=import_id,
            tenant_id=tenant_id,
            rows=state.imported,
            rejected=state.rejected,
            attempt=attempt,
        )

    async def _write(
        self,
        tenant_id: str,
        import_id: str,
        attempt: int,
        batch: Batch,
        state: _Progress,
        publish: bool,
    ) -> None:
        """One batch, its rejected rows and the import's new counts in one transaction."""
        now = utcnow()
        keep = max(0, self.settings.max_error_rows - state.rejected)
        shown = state.shown + [
            e.as_json() for e in batch.errors[: max(0, MAX_REPORTED_ERRORS - len(state.shown))]
        ]
        async with unit_of_work(self.factory) as session:
            imports = ImportRepository(session)
            customers = CustomerRepository(session)
            if batch.customers:
                existing = await customers.attributes_for(tenant_id, list(batch.customers))
                written = {
                    cid: {**existing.get(cid, {}), **values}
                    for cid, values in batch.customers.items()
                }
                await customers.upsert_attributes(tenant_id, written, now)
                # The prediction service scores them when the tenant's champion reads them.
                await publish_attributes_changed(
                    session, tenant_id, written, now, import_id=import_id
                )
            await imports.add_errors(tenant_id, import_id, batch.errors[:keep])
            held = await imports.update_held(
                import_id,
                attempt,
                processed_rows=batch.rows_read,
                rows_imported=state.imported + len(batch.customers),
                rows_rejected=state.rejected + len(batch.errors),
                errors=shown,
                heartbeat_at=now,
            )
            if not held:
                raise LostImportError(import_id)
            if publish:
                await publish_progress(session, tenant_id, import_id)
        state.processed = batch.rows_read
        state.imported += len(batch.customers)
        state.rejected += len(batch.errors)
        state.shown = shown


async def _uninterrupted(work: Any) -> Any:
    """Await ``work``; a cancelled caller still waits for it to end (a transaction cut off
    mid-statement can leave its connection holding locks) and then re-raises."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _next_batch(batches: Any) -> Batch | None:
    """The next batch, read in a worker thread. A cancelled caller still waits for the read
    under way (a thread cannot be stopped), so the file is not closed under it."""
    read = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
    try:
        return await asyncio.shield(read)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await read
        raise


@dataclass(slots=True)
class _Progress:
    processed: int
    imported: int
    rejected: int
    shown: list[dict[str, Any]]


def runner_settings(settings: Any) -> RunnerSettings:
    """The runner's settings from the service's."""
    return RunnerSettings(
        imports_dir=Path(settings.imports_dir),
        workers=settings.import_workers,
        poll_seconds=settings.import_poll_seconds,
        lease_seconds=settings.import_lease_seconds,
        max_attempts=settings.import_max_attempts,
        progress_interval_seconds=settings.import_progress_interval_seconds,
        orphan_after=timedelta(seconds=settings.stale_import_after_seconds),
        read=ReadLimits(
            max_rows=settings.max_import_rows, max_cell_chars=settings.max_import_cell_chars
        ),
        max_error_rows=settings.max_import_error_rows,
    )
