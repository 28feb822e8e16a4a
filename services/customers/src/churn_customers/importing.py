"""Reading uploaded customer files as streams, in bounded memory.

* :func:`receive_form` reads a multipart/form-data body chunk by chunk (``python-multipart`` is
  not a dependency, :class:`MultipartParser` is a small incremental parser) and spools the
  file part to a temporary file: at most ``spool_bytes`` of it stay in memory.
* :func:`inspect_csv` checks a spooled file before it is accepted: not a spreadsheet, its
  encoding (UTF-8, else Windows-1252, else refused naming the first undecodable byte) and how
  many rows it has, stopping at the first row over the limit.
* :func:`read_customer_chunks` reads it again as CSV and yields the valid rows in chunks of at
  most ``chunk_rows`` rows (and about ``chunk_chars`` characters of cells), so a caller can
  write each chunk and drop it. The only state kept across chunks is the line where each
  accepted customer id first appeared (:class:`FirstLines`, a few dozen bytes per id; the row
  cap bounds it) and the first :data:`MAX_REPORTED_ERRORS` rejected rows.

The functions that read the spooled file block; call them in a worker thread.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import itertools
import math
import re
import tempfile
from array import array
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass, field
from email.message import Message
from typing import IO, Any

#: Rejected rows kept with an import (the count of all rejected rows is kept too).
MAX_REPORTED_ERRORS = 50
MAX_ID_LENGTH = 64
#: Valid rows per chunk handed to the writer, and the cell text after which a chunk is handed
#: over early (rows with very long cells).
CHUNK_ROWS = 2_000
CHUNK_CHARS = 2 * 1024 * 1024
#: Bytes of an uploaded file kept in memory before the spool moves to a temporary file.
SPOOL_BYTES = 1024 * 1024
#: Largest text field of the multipart form (``id_column``) and largest header block of a part.
MAX_FIELD_BYTES = 64 * 1024
_MAX_PART_HEADER_BYTES = 16 * 1024
#: Bytes fed to the multipart parser (and read from the spool) at a time.
_BLOCK_BYTES = 64 * 1024

_INTEGER = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_XLSX_TYPES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel",
    }
)
#: ZIP (XLSX, ODS) and OLE2 (XLS) containers.
_CONTAINER_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class MultipartError(ValueError):
    """The body is not valid multipart/form-data."""


class UploadTooLargeError(ValueError):
    """The file part is larger than the limit (reading stopped there)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


class SpreadsheetFileError(ValueError):
    """The file is a spreadsheet (or another binary container), not CSV."""


class CsvEncodingError(ValueError):
    """The file is not text in an encoding that is read here (UTF-8 or Windows-1252)."""


class CsvFileError(ValueError):
    """The whole file is unusable (no header, no id column, broken quoting …)."""


# --------------------------------------------------------------------------- multipart


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["content-type"] = value
    params = {k.lower(): str(v) for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


@dataclass(frozen=True, slots=True)
class PartStart:
    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class PartData:
    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    pass


MultipartEvent = PartStart | PartData | PartEnd


class MultipartParser:
    """An incremental multipart/form-data parser without I/O: :meth:`feed` it bytes, act on the
    events it returns, then call :meth:`finish`. It buffers at most a part's header block or a
    delimiter's length of data, whatever the size of the parts."""

    _PREAMBLE, _AFTER_DELIMITER, _HEADERS, _BODY, _DONE = range(5)

    def __init__(self, content_type: str) -> None:
        kind, params = _header_params(content_type)
        if kind != "multipart/form-data" or not params.get("boundary"):
            raise MultipartError("expected a multipart/form-data body with a boundary")
        boundary = params["boundary"].encode("latin-1")
        self._first_delimiter = b"--" + boundary
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray()
        self._state = self._PREAMBLE
        self._parts = 0

    def feed(self, data: bytes) -> list[MultipartEvent]:
        self._buffer += data
        events: list[MultipartEvent] = []
        buffer = self._buffer
        while True:
            if self._state == self._PREAMBLE:
                at = buffer.find(self._first_delimiter)
                if at < 0:
                    del buffer[: max(0, len(buffer) - len(self._first_delimiter))]
                    break
                del buffer[: at + len(self._first_delimiter)]
                self._state = self._AFTER_DELIMITER
            elif self._state == self._AFTER_DELIMITER:
                if len(buffer) < 2:
                    break
                if buffer.startswith(b"--"):
                    self._state = self._DONE
                    continue
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise MultipartError("a boundary line does not end")
                    break
                if buffer[:end].strip(b" \t"):
                    raise MultipartError("a boundary is followed by unexpected bytes")
                del buffer[: end + 2]
                self._state = self._HEADERS
            elif self._state == self._HEADERS:
                if buffer.startswith(b"\r\n"):
                    raise MultipartError("a multipart part has no headers (and so no name)")
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(buffer) > _MAX_PART_HEADER_BYTES:
                        raise MultipartError("a multipart part's headers are too long")
                    break
                events.append(self._part_start(bytes(buffer[:end])))
                del buffer[: end + 4]
                self._parts += 1
                self._state = self._BODY
            elif self._state == self._BODY:
                at = buffer.find(self._delimiter)
                if at >= 0:
                    if at:
                        events.append(PartData(bytes(buffer[:at])))
                    events.append(PartEnd())
                    del buffer[: at + len(self._delimiter)]
                    self._state = self._AFTER_DELIMITER
                    continue
                keep = len(self._delimiter) - 1  # may be the start of a delimiter
                if len(buffer) > keep:
                    events.append(PartData(bytes(buffer[:-keep])))
                    del buffer[:-keep]
                break
            else:  # done: the epilogue is ignored
                buffer.clear()
                break
        return events

    def finish(self) -> None:
        if self._state != self._DONE:
            raise MultipartError(
                "the body ends before the closing boundary (was the upload cut short?)"
                if self._parts
                else "the multipart body has no parts"
            )

    @staticmethod
    def _part_start(head: bytes) -> PartStart:
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        message = Message()
        message["content-disposition"] = headers.get("content-disposition", "")
        part_name = message.get_param("name", header="content-disposition")
        if not isinstance(part_name, str):
            raise MultipartError("a multipart part has no name")
        return PartStart(part_name, message.get_filename(), headers.get("content-type"))


@dataclass(slots=True)
class SpooledUpload:
    """The uploaded file: in memory up to ``SPOOL_BYTES``, then in an unnamed temporary file.
    Whoever holds it closes it."""

    filename: str | None
    content_type: str | None
    file: IO[bytes]
    size: int = 0

    def close(self) -> None:
        self.file.close()


@dataclass(slots=True)
class ReceivedForm:
    fields: dict[str, str] = field(default_factory=dict)
    #: The part named ``file_field`` that has a filename, if any.
    file: SpooledUpload | None = None


async def receive_form(
    chunks: AsyncIterator[bytes],
    content_type: str,
    *,
    file_field: str = "file",
    max_file_bytes: int | None = None,
    spool_bytes: int = SPOOL_BYTES,
) -> ReceivedForm:
    """Read a multipart/form-data body: text fields into :attr:`ReceivedForm.fields` (each at
    most :data:`MAX_FIELD_BYTES`), the ``file_field`` file into a spool, any other file
    dropped. Raises :class:`MultipartError` or :class:`UploadTooLargeError` (having closed the
    spool); otherwise the caller owns ``form.file``."""
    parser = MultipartParser(content_type)
    form = ReceivedForm()
    current: PartStart | None = None
    value = bytearray()
    try:
        async for chunk in chunks:
            for start in range(0, len(chunk), _BLOCK_BYTES):
                for event in parser.feed(chunk[start : start + _BLOCK_BYTES]):
                    if isinstance(event, PartStart):
                        current = event
                        if event.filename is not None and event.name == file_field:
                            if form.file is not None:
                                raise MultipartError(f"more than one {file_field!r} part")
                            form.file = SpooledUpload(
                                event.filename,
                                event.content_type,
                                # Closed by whoever ends up holding the upload.
                                tempfile.SpooledTemporaryFile(max_size=spool_bytes),  # noqa: SIM115
                            )
                    elif isinstance(event, PartData):
                        if current is None:  # pragma: no cover - the parser starts parts first
                            raise MultipartError("data outside a part")
                        if current.filename is None:
                            value += event.data
                            if len(value) > MAX_FIELD_BYTES:
                                raise MultipartError(f"the field {current.name!r} is too long")
                        elif current.name == file_field and form.file is not None:
                            await _spool(form.file, event.data, max_file_bytes, spool_bytes)
                    else:
                        if current is not None and current.filename is None:
                            form.fields[current.name] = value.decode("utf-8", errors="replace")
                        current, value = None, bytearray()
        parser.finish()
    except BaseException:
        if form.file is not None:
            form.file.close()
        raise
    if form.file is not None:
        await asyncio.to_thread(form.file.file.seek, 0)
    return form


async def _spool(
    upload: SpooledUpload, data: bytes, max_bytes: int | None, spool_bytes: int
) -> None:
    if max_bytes is not None and upload.size + len(data) > max_bytes:
        raise UploadTooLargeError(max_bytes)
    if upload.size + len(data) > spool_bytes:  # on disk (or about to be): off the event loop
        await asyncio.to_thread(upload.file.write, data)
    else:
        upload.file.write(data)
    upload.size += len(data)


def looks_like_spreadsheet(filename: str | None, content_type: str | None) -> bool:
    """XLSX/XLS by name or declared type (the content is checked by :func:`inspect_csv`)."""
    name = (filename or "").lower()
    return (
        name.endswith((".xlsx", ".xlsm", ".xls"))
        or (content_type or "").split(";")[0].strip().lower() in _XLSX_TYPES
    )


# --------------------------------------------------------------------------- CSV


def typed_cell(raw: str) -> Any:
    """A CSV cell as JSON: blank → ``None``, integers and decimals → numbers, otherwise the
    stripped text. Numbers with leading zeros (``"007"``) stay text (codes, not quantities)."""
    text = raw.strip()
    if not text:
        return None
    if _INTEGER.fullmatch(text):
        return int(text)
    if _DECIMAL.fullmatch(text) and not re.match(r"[-+]?0[0-9]", text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


@dataclass(frozen=True, slots=True)
class CsvSummary:
    #: ``"utf-8-sig"`` or ``"cp1252"``.
    encoding: str
    #: Non-blank rows after the header, counted up to ``max_rows + 1``.
    rows: int
    #: The file has more than ``max_rows`` rows (counting stopped at the first one over).
    too_many_rows: bool


def _undecodable(file: IO[bytes], encoding: str) -> str | None:
    """Where ``file`` stops being ``encoding`` text (``None`` when all of it is)."""
    file.seek(0)
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    offset = lines = 0
    while True:
        block = file.read(_BLOCK_BYTES)
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            # The error's positions are within the decoder's pending bytes plus this block.
            # ``exc.object`` is the decoder's pending bytes (an unfinished character, never a
            # newline) followed by this block.
            start = exc.start - (len(exc.object) - len(block))
            bad = exc.object[exc.start : max(exc.end, exc.start + 1)]
            line = lines + block[: max(start, 0)].count(b"\n") + 1
            return f"byte {bad.hex(' ')} at byte offset {offset + start} (line {line})"
        if not block:
            return None
        offset += len(block)
        lines += block.count(b"\n")


def _detect_encoding(file: IO[bytes]) -> str:
    file.seek(0)
    head = file.read(4096)
    if head.startswith(_CONTAINER_MAGIC):
        raise SpreadsheetFileError("the file is a spreadsheet or another binary container")
    if head.startswith(_UTF16_BOMS):
        raise CsvEncodingError("The file is UTF-16 text; save it as CSV (UTF-8) and upload that.")
    if b"\x00" in head:
        raise CsvEncodingError(
            "The file is not text: it holds NUL bytes (is it UTF-16 or a binary file?). "
            "Save it as CSV (UTF-8) and upload that."
        )
    utf8_problem = _undecodable(file, "utf-8-sig")
    if utf8_problem is None:
        return "utf-8-sig"
    if _undecodable(file, "cp1252") is None:
        return "cp1252"  # a legacy Excel "CSV" export: every byte means one character
    raise CsvEncodingError(
        f"The file is not UTF-8 text: {utf8_problem} cannot be decoded (nor is it "
        "Windows-1252 text). Save it as CSV (UTF-8) and upload that."
    )


def _open_text(file: IO[bytes], encoding: str) -> io.TextIOWrapper:
    """``file`` from its start, decoded; :meth:`~io.TextIOWrapper.detach` it afterwards (closing
    the wrapper would close the file)."""
    file.seek(0)
    return io.TextIOWrapper(file, encoding=encoding, errors="strict", newline="")


def _csv_reader(text: io.TextIOWrapper) -> Any:
    """A CSV reader whose delimiter is the one of ``,`` ``;`` and tab that the first line uses
    most (ties, and none found, go to the comma)."""
    first = text.readline()
    delimiter = max(",;\t", key=first.count)
    return csv.reader(itertools.chain([first], text), delimiter=delimiter)


def _is_blank(record: list[str]) -> bool:
    return not record or (len(record) == 1 and not record[0].strip())


def inspect_csv(file: IO[bytes], max_rows: int | None) -> CsvSummary:
    """Check a spooled upload before it is accepted: refuse a spreadsheet
    (:class:`SpreadsheetFileError`) or undecodable text (:class:`CsvEncodingError`), and count
    its non-blank rows after the header, up to ``max_rows + 1``. Quoting errors are left to
    :func:`read_customer_chunks` (the import reports them)."""
    encoding = _detect_encoding(file)
    text = _open_text(file, encoding)
    rows = 0
    try:
        reader = _csv_reader(text)
        next(reader, None)  # the header
        for record in reader:
            if not _is_blank(record):
                rows += 1
                if max_rows is not None and rows > max_rows:
                    break
    except csv.Error:
        pass
    finally:
        text.detach()
    return CsvSummary(encoding, rows, max_rows is not None and rows > max_rows)


class FirstLines:
    """The line where each customer id was first accepted, in about ``len(id) + 35`` bytes per
    id (a ``dict`` takes about three times that): an open-addressing hash table over arrays of
    32-bit integers, the ids' UTF-8 bytes in one arena. Lookups compare the bytes, so it is
    exact. Holds up to 4 GiB of ids and line numbers below 2**32."""

    def __init__(self) -> None:
        self._slots = array("I", bytes(4 * 1024))  # 1 + entry index; 0 = free
        self._mask = 1023
        self._hashes = array("I")  # low 32 bits of each id's hash
        self._starts = array("I", [0])  # entry i's bytes are _arena[_starts[i]:_starts[i + 1]]
        self._lines = array("I")
        self._arena = bytearray()

    def __len__(self) -> int:
        return len(self._lines)

    def setdefault(self, key: str, line: int) -> int:
        """The line stored for ``key``; store ``line`` for it first when there is none."""
        encoded = key.encode()
        digest = hash(key) & 0xFFFFFFFF
        slot = digest & self._mask
        while (ref := self._slots[slot]) != 0:
            entry = ref - 1
            if (
                self._hashes[entry] == digest
                and self._arena[self._starts[entry] : self._starts[entry + 1]] == encoded
            ):
                return self._lines[entry]
            slot = (slot + 1) & self._mask
        self._slots[slot] = len(self._lines) + 1
        self._hashes.append(digest)
        self._arena += encoded
        self._starts.append(len(self._arena))
        self._lines.append(line)
        if 2 * len(self._lines) > len(self._slots):
            self._grow()
        return line

    def _grow(self) -> None:
        size = 2 * len(self._slots)
        slots = array("I", bytes(4 * size))
        mask = size - 1
        for entry, digest in enumerate(self._hashes):
            slot = digest & mask
            while slots[slot] != 0:
                slot = (slot + 1) & mask
            slots[slot] = entry + 1
        self._slots, self._mask = slots, mask


@dataclass(slots=True)
class ImportReport:
    """Counts of a file read by :func:`read_customer_chunks` and its first rejected rows."""

    rows_total: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, error: str) -> None:
        self.rows_rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "error": error})


#: A chunk of valid rows: customer id → typed attributes (the id column left out).
CustomerChunk = dict[str, dict[str, Any]]


def read_customer_chunks(
    file: IO[bytes],
    encoding: str,
    id_column: str,
    report: ImportReport,
    *,
    max_rows: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    chunk_chars: int = CHUNK_CHARS,
) -> Generator[CustomerChunk, None, None]:
    """Read a CSV file with a header row and yield its valid rows, typed, in chunks.

    The delimiter is the one of ``,`` ``;`` and tab that the header line uses most.
    A row is rejected whole (never half-applied), and counted in ``report``, when its field
    count differs from the header's, its id is blank or longer than 64 characters, or its id
    repeats an earlier row's. The id column is not stored as an attribute (it becomes the
    customer id). A file-level problem raises :class:`CsvFileError`, also after chunks were
    yielded (the caller's transaction must then not keep them).
    """
    text = _open_text(file, encoding)
    try:
        reader = _csv_reader(text)
        header = _read_header(reader, id_column)
        id_index = header.index(id_column)
        width = len(header)
        first_lines = FirstLines()
        chunk: CustomerChunk = {}
        chars = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise CsvFileError(f"line {reader.line_num}: {exc}") from None
            except UnicodeDecodeError as exc:  # inspect_csv checked it; the spool changed?
                raise CsvFileError(f"after line {reader.line_num}: {exc}") from None
            line = reader.line_num
            if _is_blank(record):
                continue
            report.rows_total += 1
            if max_rows is not None and report.rows_total > max_rows:
                raise CsvFileError(f"the file has more than {max_rows} rows")
            if len(record) != width:
                report.reject(line, f"expected {width} fields, found {len(record)}")
                continue
            customer_id = record[id_index].strip()
            if not customer_id:
                report.reject(line, f"blank {id_column!r}")
                continue
            if len(customer_id) > MAX_ID_LENGTH:
                report.reject(line, f"{id_column!r} is longer than {MAX_ID_LENGTH} characters")
                continue
            first_line = first_lines.setdefault(customer_id, line)
            if first_line != line:
                report.reject(line, f"{id_column!r} {customer_id!r} repeats line {first_line}")
                continue
            report.rows_accepted += 1
            chunk[customer_id] = {
                name: typed_cell(value)
                for i, (name, value) in enumerate(zip(header, record, strict=True))
                if i != id_index
            }
            chars += sum(map(len, record))
            if len(chunk) >= chunk_rows or chars >= chunk_chars:
                yield chunk
                chunk, chars = {}, 0
        if chunk:
            yield chunk
    finally:
        text.detach()


def _read_header(reader: Any, id_column: str) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise CsvFileError("the file is empty") from None
    except csv.Error as exc:
        raise CsvFileError(f"line 1: {exc}") from None
    header = [name.strip() for name in header]
    if id_column not in header:
        raise CsvFileError(f"id column {id_column!r} not found; the header is {header}")
    if any(not name for name in header):
        raise CsvFileError("the header has a blank column name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise CsvFileError(f"the header repeats column names: {duplicates}")
    return header
