"""Reading uploaded customer files (CSV and XLSX) as streams, in bounded memory.

* :func:`receive_form` reads a multipart/form-data body chunk by chunk (``python-multipart`` is
  not a dependency, :class:`MultipartParser` is a small incremental parser) and spools the
  file part, hashing it on the way (SHA-256, for idempotent re-uploads): into a temporary
  file (at most ``spool_bytes`` in memory) or into the file ``open_spool`` gives.
* :func:`parse_mapping` reads the ``mapping`` form field (which column is the id, e-mail,
  name, label, attributes); :meth:`ColumnMapping.resolve` checks it against the header.
* :func:`inspect_csv` checks a CSV file before it is accepted: not a spreadsheet, its
  encoding (UTF-8 with or without BOM, else Windows-1252 — what "Latin-1" files are, as
  browsers read them — else refused naming the first undecodable byte), its header and how
  many rows it has, stopping at the first row over the limit.
* :func:`inspect_xlsx` checks an XLSX file before any XML of it is parsed: the zip central
  directory (entry count, each entry's and the total uncompressed size, compression ratios —
  a zip bomb is refused from its directory, and :mod:`zipfile` never inflates an entry past
  the size its directory declares), then the sheet's declared dimension and its header.
  Cells are read with ``openpyxl`` in read-only, values-only mode: the sheet streams row by
  row, formulas are never evaluated (their cached value is read, or nothing).
* :func:`read_batches` reads the file again and yields its rows in batches — the valid ones
  as customers' attributes, the rejected ones as :class:`RowError` — so a caller can write
  each batch and drop it. It can skip the rows an earlier, interrupted run already wrote.
  The only state kept across batches is the line where each accepted customer id first
  appeared (:class:`FirstLines`, a few dozen bytes per id; the row cap bounds it).

The functions that read the spooled file block; call them in a worker thread.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import datetime as dt
import hashlib
import io
import itertools
import math
import re
import tempfile
import zipfile
from array import array
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from typing import IO, Any, Literal

import orjson

#: Rejected rows shown with an import (all of them, up to a limit, are in its error report).
MAX_REPORTED_ERRORS = 50
MAX_ID_LENGTH = 64
#: Characters of one cell (a longer one rejects its row) and columns of a file.
MAX_CELL_CHARS = 32_767  # Excel's own limit
MAX_COLUMNS = 1_000
#: Characters of a rejected value kept in the error report.
MAX_ERROR_VALUE_CHARS = 200
#: Valid rows per chunk handed to the writer, and the cell text after which a chunk is handed
#: over early (rows with very long cells).
CHUNK_ROWS = 2_000
CHUNK_CHARS = 2 * 1024 * 1024
#: Bytes of an uploaded file kept in memory before the spool moves to a temporary file.
SPOOL_BYTES = 1024 * 1024
#: Largest text field of the multipart form (``mapping``) and largest header block of a part.
MAX_FIELD_BYTES = 64 * 1024
_MAX_PART_HEADER_BYTES = 16 * 1024
#: Bytes fed to the multipart parser (and read from the spool) at a time.
_BLOCK_BYTES = 64 * 1024

_INTEGER = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_XLSX_TYPES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel.sheet.macroenabled.12",
    }
)
_XLS_TYPE = "application/vnd.ms-excel"
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
    """The file is a spreadsheet (or another binary container) that is not read: XLS, ODS."""


class XlsxFileError(ValueError):
    """The file is not a readable XLSX workbook (a broken zip, no worksheet, encrypted …)."""


class ZipBombError(ValueError):
    """The XLSX zip's directory declares more than the limits allow (refused before parsing)."""


class MappingError(ValueError):
    """The column mapping is malformed or names columns the header does not have."""


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
    """The uploaded file: in memory up to ``SPOOL_BYTES``, then in an unnamed temporary file
    (or in the file ``open_spool`` gave). Whoever holds it closes it."""

    filename: str | None
    content_type: str | None
    file: IO[bytes]
    size: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)

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
    open_spool: Callable[[], IO[bytes]] | None = None,
) -> ReceivedForm:
    """Read a multipart/form-data body: text fields into :attr:`ReceivedForm.fields` (each at
    most :data:`MAX_FIELD_BYTES`), the ``file_field`` file into a spool, any other file
    dropped. ``open_spool`` opens the file the upload is written to (all of it on disk); by
    default a :class:`tempfile.SpooledTemporaryFile`. Raises :class:`MultipartError` or
    :class:`UploadTooLargeError` (having closed the spool); otherwise the caller owns
    ``form.file``."""
    on_disk = open_spool is not None
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
                                open_spool()
                                if open_spool is not None
                                else tempfile.SpooledTemporaryFile(max_size=spool_bytes),  # noqa: SIM115
                            )
                    elif isinstance(event, PartData):
                        if current is None:  # pragma: no cover - the parser starts parts first
                            raise MultipartError("data outside a part")
                        if current.filename is None:
                            value += event.data
                            if len(value) > MAX_FIELD_BYTES:
                                raise MultipartError(f"the field {current.name!r} is too long")
                        elif current.name == file_field and form.file is not None:
                            await _spool(
                                form.file, event.data, max_file_bytes, 0 if on_disk else spool_bytes
                            )
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
    upload.sha256.update(data)
    if upload.size + len(data) > spool_bytes:  # on disk (or about to be): off the event loop
        await asyncio.to_thread(upload.file.write, data)
    else:
        upload.file.write(data)
    upload.size += len(data)


FileFormat = Literal["csv", "xlsx"]


def sniff_format(head: bytes, filename: str | None, content_type: str | None) -> FileFormat:
    """What the upload is, by its first bytes, then its name and declared type: a zip is XLSX
    (:func:`inspect_xlsx` checks it is a workbook); other spreadsheets (XLS, ODS by name or
    type, any OLE2 file) raise :class:`SpreadsheetFileError`; the rest is read as CSV."""
    name = (filename or "").lower()
    kind = (content_type or "").split(";")[0].strip().lower()
    if head.startswith(b"\xd0\xcf\x11\xe0") or name.endswith(".xls") or kind == _XLS_TYPE:
        raise SpreadsheetFileError(
            "Excel 97-2003 workbooks (XLS) and other OLE2 files cannot be read; save the sheet "
            "as XLSX or CSV (UTF-8) and upload that."
        )
    if name.endswith((".ods", ".numbers")):
        raise SpreadsheetFileError(
            "Only XLSX workbooks are read; save the sheet as XLSX or CSV (UTF-8)."
        )
    if head.startswith(b"PK\x03\x04") or name.endswith((".xlsx", ".xlsm")) or kind in _XLSX_TYPES:
        return "xlsx"
    return "csv"


# --------------------------------------------------------------------------- column mapping

_MAPPING_KEYS = ("id", "email", "name", "label", "attributes")


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Which column of the file is what. ``id`` becomes the customer id; ``email`` and ``name``
    are stored as the attributes ``email`` and ``name`` (what the customer list searches);
    ``label`` is kept under its own name (the attribute a labelled model trains on); of the
    other columns, ``attributes`` lists the ones kept (``None``: every one)."""

    id: str = "customer_id"
    email: str | None = None
    name: str | None = None
    label: str | None = None
    attributes: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "label": self.label,
            "attributes": list(self.attributes) if self.attributes is not None else None,
        }

    def resolve(self, header: Sequence[str]) -> ResolvedMapping:
        """Where each mapped column is in ``header``: :class:`MappingError` naming the columns
        the header lacks."""
        wanted = [self.id, self.email, self.name, self.label, *(self.attributes or ())]
        missing = [column for column in wanted if column is not None and column not in header]
        if missing:
            raise MappingError(
                f"the file has no column {', '.join(map(repr, missing))}; its header is "
                f"{list(header)}"
            )
        stored: list[tuple[int, str]] = []
        special = {self.id, self.email, self.name, self.label}
        for index, column in enumerate(header):
            if column == self.id:
                continue
            if column == self.email:
                stored.append((index, "email"))
            elif column == self.name:
                stored.append((index, "name"))
            elif column == self.label or (
                column not in special and (self.attributes is None or column in self.attributes)
            ):
                stored.append((index, column))
        names = [name for _, name in stored]
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise MappingError(
                f"more than one column would be stored as {clashes}: map the e-mail or name "
                "column, or leave the other one out of 'attributes'"
            )
        return ResolvedMapping(header.index(self.id), self.id, tuple(stored))


@dataclass(frozen=True, slots=True)
class ResolvedMapping:
    id_index: int
    id_column: str
    #: (index in the row, attribute name) of every stored column.
    stored: tuple[tuple[int, str], ...]


def parse_mapping(mapping: str | None, id_column: str | None) -> ColumnMapping:
    """The ``mapping`` form field (a JSON object), or the older ``id_column`` field alone;
    :class:`MappingError` says what is wrong with it."""
    if mapping is None or not mapping.strip():
        column = "customer_id" if id_column is None else id_column.strip()
        if not column:
            raise MappingError("id_column must not be blank")
        return ColumnMapping(id=column)
    if id_column is not None:
        raise MappingError("give the id column in 'mapping' or in 'id_column', not both")
    try:
        value = orjson.loads(mapping)
    except orjson.JSONDecodeError as exc:
        raise MappingError(f"'mapping' is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise MappingError('\'mapping\' must be a JSON object such as {"id": "customerID"}')
    unknown = sorted(set(value) - set(_MAPPING_KEYS))
    if unknown:
        raise MappingError(f"'mapping' has unknown keys {unknown}; the keys are {_MAPPING_KEYS}")
    columns: dict[str, str | None] = {}
    for key in ("id", "email", "name", "label"):
        given: Any = value.get(key)
        if given is None and key != "id":
            columns[key] = None
            continue
        if not isinstance(given, str) or not given.strip():
            raise MappingError(
                f"mapping.{key} must be a column name (a non-blank string)"
                + (" and is required" if key == "id" else "")
            )
        columns[key] = given.strip()
    attributes = value.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, list) or not all(
            isinstance(column, str) and column.strip() for column in attributes
        ):
            raise MappingError("mapping.attributes must be a list of column names, or null")
        attributes = [column.strip() for column in attributes]
    named = [c for c in columns.values() if c is not None] + list(attributes or ())
    repeated = sorted({c for c in named if named.count(c) > 1})
    if repeated:
        raise MappingError(f"'mapping' names these columns more than once: {repeated}")
    return ColumnMapping(
        id=columns["id"] or "customer_id",
        email=columns["email"],
        name=columns["name"],
        label=columns["label"],
        attributes=tuple(attributes) if attributes is not None else None,
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
    #: The header's column names (blank when the file is empty).
    header: tuple[str, ...] = ()
    #: The file starts with a UTF-8 byte order mark.
    bom: bool = False

    @property
    def encoding_label(self) -> str:
        """How the encoding is reported: ``utf-8``, ``utf-8-bom`` or ``windows-1252``."""
        if self.encoding == "cp1252":
            return "windows-1252"
        return "utf-8-bom" if self.bom else "utf-8"


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
        return "cp1252"  # Latin-1 / a legacy Excel "CSV" export: every byte is one character
    raise CsvEncodingError(
        f"The file is not UTF-8 text: {utf8_problem} cannot be decoded (nor is it "
        "Latin-1/Windows-1252 text). Save it as CSV (UTF-8) and upload that."
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


def _is_blank(record: Sequence[Any]) -> bool:
    return all(cell is None or (isinstance(cell, str) and not cell.strip()) for cell in record)


def inspect_csv(file: IO[bytes], max_rows: int | None) -> CsvSummary:
    """Check a spooled upload before it is accepted: refuse a spreadsheet
    (:class:`SpreadsheetFileError`) or undecodable text (:class:`CsvEncodingError`), read its
    header and count its non-blank rows after it, up to ``max_rows + 1``. Quoting errors are
    left to :func:`read_batches` (the import reports them)."""
    encoding = _detect_encoding(file)
    file.seek(0)
    bom = file.read(3) == codecs.BOM_UTF8
    text = _open_text(file, encoding)
    rows = 0
    header: tuple[str, ...] = ()
    try:
        reader = _csv_reader(text)
        header = tuple(name.strip() for name in next(reader, []))
        for record in reader:
            if not _is_blank(record):
                rows += 1
                if max_rows is not None and rows > max_rows:
                    break
    except csv.Error:
        pass
    finally:
        text.detach()
    return CsvSummary(encoding, rows, max_rows is not None and rows > max_rows, header, bom)


# --------------------------------------------------------------------------- XLSX


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """What an XLSX zip's central directory may declare."""

    #: Uncompressed bytes of all entries together (and so of any one).
    max_total_bytes: int = 256 * 1024 * 1024
    #: Uncompressed / compressed bytes of an entry larger than ``ratio_floor_bytes``, and of
    #: the whole archive. Spreadsheet XML compresses about 10-30 times; bombs, thousands.
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1024 * 1024
    max_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class XlsxSummary:
    header: tuple[str, ...]
    #: Data rows the sheet's ``<dimension>`` declares (``None``: it declares none).
    declared_rows: int | None
    sheet: str


def check_zip(file: IO[bytes], limits: ZipLimits) -> None:
    """Refuse a zip whose central directory declares too much (:class:`ZipBombError`) or that
    is not a zip (:class:`XlsxFileError`). Reads only the directory: nothing is inflated."""
    file.seek(0)
    try:
        with zipfile.ZipFile(file) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise XlsxFileError(f"the file is not a readable XLSX (zip) workbook: {exc}") from None
    if len(entries) > limits.max_entries:
        raise ZipBombError(
            f"the workbook has {len(entries)} zip entries (at most {limits.max_entries})"
        )
    total = compressed = 0
    for entry in entries:
        if entry.flag_bits & 0x1:
            raise XlsxFileError("the workbook is encrypted; save it without a password")
        total += entry.file_size
        compressed += entry.compress_size
        if total > limits.max_total_bytes:
            raise ZipBombError(
                f"the workbook inflates to more than {limits.max_total_bytes} bytes (its zip "
                "directory says so); nothing of it was read"
            )
        if entry.file_size > limits.ratio_floor_bytes and entry.file_size > limits.max_ratio * max(
            entry.compress_size, 1
        ):
            raise ZipBombError(
                f"the workbook's entry {entry.filename!r} is compressed "
                f"{entry.file_size / max(entry.compress_size, 1):.0f} times (at most "
                f"{limits.max_ratio:.0f}); nothing of it was read"
            )
    if total > limits.ratio_floor_bytes and total > limits.max_ratio * max(compressed, 1):
        raise ZipBombError(
            f"the workbook is compressed {total / max(compressed, 1):.0f} times (at most "
            f"{limits.max_ratio:.0f}); nothing of it was read"
        )
    names = {entry.filename for entry in entries}
    if "xl/workbook.xml" not in names:
        raise XlsxFileError(
            "the zip is not an XLSX workbook (no xl/workbook.xml); save the sheet as XLSX or CSV"
        )


_SHEET_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_SIZE_PATCHED = False


def _declared_size(source: IO[bytes]) -> tuple[int, int, int, int] | None:
    """A sheet's ``<dimension>`` (min column, min row, max column, max row), read from its XML
    up to the start of ``<sheetData>``; ``None`` when it declares none."""
    # openpyxl's own parser: defusedxml's when it is installed (it is a dependency here).
    from openpyxl.utils.cell import range_boundaries
    from openpyxl.xml.functions import iterparse

    for _event, element in iterparse(source, events=("start",)):
        if element.tag == _SHEET_NS + "dimension":
            bounds = range_boundaries(element.get("ref") or "")
            return None if None in bounds else bounds
        if element.tag == _SHEET_NS + "sheetData":
            return None
    return None


def _size_sheets_from_their_head() -> None:
    """openpyxl's read-only worksheets read their ``<dimension>`` when the workbook is opened,
    with an ``end``-event parse that, when a sheet declares none (as openpyxl's own write-only
    mode and many exporters write them), runs through the whole sheet — every sheet, on every
    open (25 s for 100,000 rows). Read it from the sheet's head instead: the same answer,
    without parsing the rows. Replaces the method once, on the first XLSX read."""
    global _SIZE_PATCHED
    if _SIZE_PATCHED:
        return
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet

    def _get_size(self: Any) -> None:
        source = self._get_source()
        try:
            bounds = _declared_size(source)
        except Exception:  # a malformed head: the sheet is read without a size
            bounds = None
        finally:
            source.close()
        if bounds is not None:
            self._min_column, self._min_row, self._max_column, self._max_row = bounds

    ReadOnlyWorksheet._get_size = _get_size
    _SIZE_PATCHED = True


@contextmanager
def _open_sheet(file: IO[bytes]) -> Iterator[Any]:
    # openpyxl is imported here, not at import time: only XLSX imports pay for it.
    import openpyxl

    _size_sheets_from_their_head()
    file.seek(0)
    try:
        workbook = openpyxl.load_workbook(file, read_only=True, data_only=True, keep_links=False)
    except Exception as exc:  # openpyxl raises many kinds on a broken workbook
        raise XlsxFileError(f"the workbook cannot be read: {exc}") from None
    try:
        sheets = workbook.worksheets
        if not sheets:
            raise XlsxFileError("the workbook has no worksheet")
        yield sheets[0]
    finally:
        workbook.close()


def _header_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def inspect_xlsx(
    file: IO[bytes], zip_limits: ZipLimits, *, max_columns: int = MAX_COLUMNS
) -> XlsxSummary:
    """Check an XLSX upload before it is accepted (:func:`check_zip`, then the first
    worksheet's declared size and its header row)."""
    check_zip(file, zip_limits)
    with _open_sheet(file) as sheet:
        declared_rows = declared_columns = None
        try:
            if sheet.max_row is not None and sheet.max_column is not None:
                declared_rows, declared_columns = sheet.max_row - 1, sheet.max_column
        except Exception:  # a malformed <dimension>: read without it
            declared_rows = declared_columns = None
        if declared_columns is not None and declared_columns > max_columns:
            raise XlsxFileError(
                f"the sheet declares {declared_columns} columns; at most {max_columns} are read"
            )
        sheet.reset_dimensions()  # rows as long as their cells, whatever <dimension> says
        header: tuple[str, ...] = ()
        try:
            for row in sheet.iter_rows(values_only=True):
                header = tuple(_header_text(value) for value in row)
                break
        except Exception as exc:
            raise XlsxFileError(f"the sheet cannot be read: {exc}") from None
        return XlsxSummary(_trim(header), declared_rows, str(sheet.title))


def _trim(header: tuple[str, ...]) -> tuple[str, ...]:
    end = len(header)
    while end and not header[end - 1]:
        end -= 1
    return header[:end]


def _xlsx_cell(value: Any) -> Any:
    """An XLSX cell's value as JSON (text stripped, blank → ``None``, dates as ISO 8601)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


# --------------------------------------------------------------------------- reading rows


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


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row: its line (1 = the header), the column and value at fault (when one is),
    and why."""

    line: int
    column: str | None
    value: str | None
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "value": self.value, "error": self.reason}


@dataclass(slots=True)
class Batch:
    """Rows of the file, in order: the accepted ones and the rejected ones."""

    #: Customer id → stored attributes.
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    #: Non-blank rows read from the start of the file up to and including this batch.
    rows_read: int = 0


@dataclass(frozen=True, slots=True)
class ReadLimits:
    max_rows: int | None = None
    max_cell_chars: int = MAX_CELL_CHARS
    chunk_rows: int = CHUNK_ROWS
    chunk_chars: int = CHUNK_CHARS


def _clip(value: Any, size: int = MAX_ERROR_VALUE_CHARS) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= size else text[: size - 1] + "…"


@contextmanager
def _records(
    file: IO[bytes], file_format: FileFormat, encoding: str | None
) -> Iterator[tuple[list[str], Iterator[tuple[int, Sequence[Any]]]]]:
    """The header and an iterator of ``(line, cells)``: CSV cells as text, XLSX cells typed.
    File-level problems raise :class:`CsvFileError`."""
    if file_format == "csv":
        text = _open_text(file, encoding or "utf-8-sig")
        try:
            reader = _csv_reader(text)
            try:
                header = next(reader)
            except StopIteration:
                raise CsvFileError("the file is empty") from None
            except (csv.Error, UnicodeDecodeError) as exc:
                raise CsvFileError(f"line 1: {exc}") from None

            def rows() -> Iterator[tuple[int, Sequence[Any]]]:
                while True:
                    try:
                        record = next(reader)
                    except StopIteration:
                        return
                    except csv.Error as exc:
                        raise CsvFileError(f"line {reader.line_num}: {exc}") from None
                    except UnicodeDecodeError as exc:  # inspect_csv checked it
                        raise CsvFileError(f"after line {reader.line_num}: {exc}") from None
                    yield reader.line_num, record

            yield [name.strip() for name in header], rows()
        finally:
            text.detach()
        return
    try:
        with _open_sheet(file) as sheet:
            sheet.reset_dimensions()
            cells = sheet.iter_rows(values_only=True)
            first = next(cells, None)
            if first is None:
                raise CsvFileError("the sheet is empty")

            def sheet_rows() -> Iterator[tuple[int, Sequence[Any]]]:
                line = 1
                try:
                    for row in cells:
                        line += 1
                        yield line, row
                except CsvFileError:
                    raise
                except Exception as exc:
                    raise CsvFileError(
                        f"the sheet cannot be read after row {line}: {exc}"
                    ) from None

            yield list(_trim(tuple(_header_text(value) for value in first))), sheet_rows()
    except XlsxFileError as exc:
        raise CsvFileError(str(exc)) from None


def check_header(header: Sequence[str]) -> None:
    if not header:
        raise CsvFileError("the header row is empty")
    if len(header) > MAX_COLUMNS:
        raise CsvFileError(f"the header has {len(header)} columns; at most {MAX_COLUMNS} are read")
    if any(not name for name in header):
        raise CsvFileError("the header has a blank column name")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise CsvFileError(f"the header repeats column names: {duplicates}")


def read_batches(
    file: IO[bytes],
    file_format: FileFormat,
    encoding: str | None,
    mapping: ColumnMapping,
    limits: ReadLimits = ReadLimits(),
    *,
    skip_rows: int = 0,
) -> Generator[Batch, None, None]:
    """Read the file (CSV or XLSX) and yield its rows in batches of at most ``chunk_rows``
    accepted rows (or about ``chunk_chars`` characters of cells), typed.

    A row is rejected whole (never half-applied) when its cells do not fit the header (CSV:
    another field count; XLSX: a value right of the last column), its id is blank or longer
    than 64 characters or repeats an earlier row's, or a cell is longer than
    ``max_cell_chars``. The first ``skip_rows`` non-blank rows are read (their ids still
    count as seen) but not yielded: an interrupted import resumes after the rows it wrote.
    A file-level problem (no header, a missing mapped column, broken quoting, too many rows)
    raises :class:`CsvFileError`, also after batches were yielded.
    """
    with _records(file, file_format, encoding) as (header, rows):
        check_header(header)
        try:
            resolved = mapping.resolve(header)
        except MappingError as exc:
            raise CsvFileError(str(exc)) from None
        id_index, id_column, stored = resolved.id_index, resolved.id_column, resolved.stored
        width = len(header)
        strict_width = file_format == "csv"
        first_lines = FirstLines()
        batch = Batch()
        chars = 0
        count = 0
        for line, record in rows:
            if _is_blank(record):
                continue
            count += 1
            if limits.max_rows is not None and count > limits.max_rows:
                raise CsvFileError(f"the file has more than {limits.max_rows} rows")
            skipping = count <= skip_rows
            error, customer_id, values = _read_row(
                line, record, width, strict_width, id_index, id_column, stored, limits
            )
            if error is None and customer_id is not None:
                first_line = first_lines.setdefault(customer_id, line)
                if first_line != line:
                    error = RowError(
                        line, id_column, _clip(customer_id), f"repeats the id of line {first_line}"
                    )
            if skipping:
                continue
            batch.rows_read = count
            if error is not None:
                batch.errors.append(error)
                continue
            assert customer_id is not None
            batch.customers[customer_id] = values
            chars += sum(len(cell) if isinstance(cell, str) else 8 for cell in record)
            if len(batch.customers) >= limits.chunk_rows or chars >= limits.chunk_chars:
                yield batch
                batch, chars = Batch(rows_read=count), 0
        if batch.customers or batch.errors:
            yield batch


def _read_row(
    line: int,
    record: Sequence[Any],
    width: int,
    strict_width: bool,
    id_index: int,
    id_column: str,
    stored: Sequence[tuple[int, str]],
    limits: ReadLimits,
) -> tuple[RowError | None, str | None, dict[str, Any]]:
    if strict_width and len(record) != width:
        return RowError(line, None, None, f"expected {width} fields, found {len(record)}"), None, {}
    if len(record) > width:
        extra = next((i for i in range(width, len(record)) if record[i] is not None), None)
        if extra is not None:
            return (
                RowError(
                    line, None, _clip(record[extra]), f"a value right of the last column ({width})"
                ),
                None,
                {},
            )
    for index, cell in enumerate(record[:width]):
        if isinstance(cell, str) and len(cell) > limits.max_cell_chars:
            return (
                RowError(
                    line,
                    _column_name(index, stored, id_index, id_column),
                    _clip(cell),
                    f"a cell longer than {limits.max_cell_chars} characters",
                ),
                None,
                {},
            )
    raw_id = record[id_index] if id_index < len(record) else None
    customer_id = _header_text(raw_id)
    if not customer_id:
        return RowError(line, id_column, None, "blank id"), None, {}
    if len(customer_id) > MAX_ID_LENGTH:
        return (
            RowError(
                line, id_column, _clip(customer_id), f"an id longer than {MAX_ID_LENGTH} characters"
            ),
            None,
            {},
        )
    typed = typed_cell if strict_width else _xlsx_cell
    values = {name: typed(record[index]) if index < len(record) else None for index, name in stored}
    return None, customer_id, values


def _column_name(
    index: int, stored: Sequence[tuple[int, str]], id_index: int, id_column: str
) -> str | None:
    if index == id_index:
        return id_column
    return next((name for i, name in stored if i == index), None)


def count_rows(
    file: IO[bytes], file_format: FileFormat, encoding: str | None, max_rows: int | None
) -> int:
    """The non-blank rows after the header (:class:`CsvFileError` past ``max_rows`` or on a
    file-level problem): the check an import makes before writing anything."""
    with _records(file, file_format, encoding) as (header, rows):
        check_header(header)
        count = 0
        for _line, record in rows:
            if not _is_blank(record):
                count += 1
                if max_rows is not None and count > max_rows:
                    raise CsvFileError(f"the file has more than {max_rows} rows")
        return count
