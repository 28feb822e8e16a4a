"""Customer export (``GET /v1/customers/export``): CSV or XLSX, streamed page by page.

The rows are read in keyset pages of the customer id, each in its own short read transaction,
and each page is encoded and handed to the response before the next is read, so memory does
not grow with the number of customers. XLSX is written as the workbook's zip entries with the
standard library (``zipfile`` writes to an unseekable stream with data descriptors), so a
spreadsheet streams as a CSV does. Text cells that a spreadsheet would run as a formula are
neutralised as OWASP recommends (a leading ``'``).
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from xml.sax.saxutils import escape

import orjson
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.cohorts import resolve_segment
from churn_customers.repository import ExportRepository
from churn_customers.schemas import CustomerFilter
from churn_shared.db import unit_of_work
from churn_shared.errors import UnprocessableError
from churn_shared.logging import get_logger

log = get_logger(__name__)

ExportFormat = Literal["csv", "xlsx"]

#: Customers read (and encoded) per page.
EXPORT_PAGE_SIZE = 1_000
#: Most customers one export may hold; a larger selection must be narrowed by the filter.
MAX_EXPORT_ROWS = 1_000_000
#: Most attribute columns (distinct attribute names among the selected customers).
MAX_ATTRIBUTE_COLUMNS = 1_000
#: Excel keeps at most this many characters in a cell.
MAX_CELL_CHARS = 32_767
#: Drivers exported per customer (the score's top ones).
EXPORT_DRIVERS = 3

FIXED_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "churn_probability",
    "risk_level",
    "model_version",
    "scored_at",
    *(f"driver_{i}" for i in range(1, EXPORT_DRIVERS + 1)),
    "first_seen_at",
    "updated_at",
)

#: A spreadsheet treats text starting with one of these as a formula (OWASP CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
#: Characters XML 1.0 does not allow (all C0 controls but tab, newline and carriage return).
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def neutralise(text: str) -> str:
    """``text`` made safe to open in a spreadsheet: prefixed with ``'`` when it starts with a
    formula trigger, and cut to a cell's length."""
    if text.startswith(FORMULA_TRIGGERS):
        text = "'" + text
    return text[:MAX_CELL_CHARS]


Cell = str | int | float | bool | None


def cell(value: Any) -> Cell:
    """An exported value: numbers and booleans as they are, times in ISO 8601, nested JSON and
    everything else as neutralised text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict):
        return neutralise(orjson.dumps(value).decode())
    return neutralise(str(value))


def driver_text(driver: dict[str, Any]) -> str:
    """``feature=value (+contribution)``: one driver in one cell."""
    value = driver.get("value")
    shown = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return f"{driver.get('feature')}={shown} ({driver.get('contribution', 0.0):+.3f})"


def export_row(row: Any, attribute_columns: Sequence[str]) -> list[Cell]:
    drivers = list(row.drivers or [])[:EXPORT_DRIVERS]
    attributes = row.attributes or {}
    return [
        cell(row.customer_id),
        row.churn_probability,
        row.risk_level,
        cell(row.model_version),
        cell(row.scored_at),
        *(
            cell(driver_text(drivers[i])) if i < len(drivers) else None
            for i in range(EXPORT_DRIVERS)
        ),
        cell(row.first_seen_at),
        cell(row.updated_at),
        *(cell(attributes.get(name)) for name in attribute_columns),
    ]


class CsvEncoder:
    """UTF-8 CSV with a byte-order mark (so spreadsheets read it as UTF-8)."""

    media_type = "text/csv; charset=utf-8"
    extension = "csv"

    def start(self, header: Sequence[str]) -> bytes:
        return "\ufeff".encode() + self.rows([[neutralise(h) for h in header]])

    def rows(self, rows: Iterable[Sequence[Cell]]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerows(rows)
        return buffer.getvalue().encode()

    def finish(self) -> bytes:
        return b""


class _Sink(io.RawIOBase):
    """An unseekable byte sink that ``zipfile`` writes to and the response drains."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


_STATIC_PARTS = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="customers" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
        'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
        "</Relationships>"
    ),
}


class XlsxEncoder:
    """One-sheet XLSX (inline strings), its sheet streamed as a deflated zip entry."""

    media_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    extension = "xlsx"

    def __init__(self) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", compression=zipfile.ZIP_DEFLATED)
        self._sheet: Any = None
        self._next_row = 1

    def start(self, header: Sequence[str]) -> bytes:
        for name, text in _STATIC_PARTS.items():
            self._zip.writestr(name, text)
        self._sheet = self._zip.open("xl/worksheets/sheet1.xml", "w", force_zip64=True)
        self._sheet.write(
            b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            b"<sheetData>"
        )
        return self.rows([[neutralise(h) for h in header]])

    def rows(self, rows: Iterable[Sequence[Cell]]) -> bytes:
        parts: list[str] = []
        for values in rows:
            r = self._next_row
            self._next_row += 1
            parts.append(f'<row r="{r}">')
            for index, value in enumerate(values):
                if value is None:
                    continue
                ref = f"{_column_letter(index)}{r}"
                if isinstance(value, bool):
                    parts.append(f'<c r="{ref}" t="b"><v>{int(value)}</v></c>')
                elif isinstance(value, int | float):
                    parts.append(f'<c r="{ref}"><v>{value!r}</v></c>')
                else:
                    # A carriage return as a reference: a literal one is read back as a newline.
                    text = escape(_XML_ILLEGAL.sub("", value), {"\r": "&#13;"})
                    parts.append(
                        f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t>'
                        "</is></c>"
                    )
            parts.append("</row>")
        self._sheet.write("".join(parts).encode())
        return self._sink.drain()

    def finish(self) -> bytes:
        self._sheet.write(b"</sheetData></worksheet>")
        self._sheet.close()
        self._zip.close()
        return self._sink.drain()


@dataclass(frozen=True, slots=True)
class PreparedExport:
    """What the route answers with: a media type, a file name and the streamed body."""

    media_type: str
    filename: str
    body: AsyncIterator[bytes]


class ExportService:
    """Streams a tenant's customers that match a filter as CSV or XLSX."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    async def prepare(
        self, tenant_id: str, where: CustomerFilter, export_format: ExportFormat
    ) -> PreparedExport:
        """Check the selection (at most :data:`MAX_EXPORT_ROWS` customers and
        :data:`MAX_ATTRIBUTE_COLUMNS` attribute names, else 422) and find its attribute
        columns, before anything is sent; then hand back the body to stream."""
        async with unit_of_work(self._session_factory) as session:
            await resolve_segment(session, tenant_id, where)
            repository = ExportRepository(session)
            if await repository.count_up_to(tenant_id, where, MAX_EXPORT_ROWS + 1) > (
                MAX_EXPORT_ROWS
            ):
                raise UnprocessableError(
                    f"An export holds at most {MAX_EXPORT_ROWS} customers; narrow the filter."
                )
        names: set[str] = set()
        after: str | None = None
        while True:
            async with unit_of_work(self._session_factory) as session:
                page = await ExportRepository(session).attribute_names_page(
                    tenant_id, where, after, EXPORT_PAGE_SIZE * 5
                )
            for _, keys in page:
                names.update(keys)
            if len(names) > MAX_ATTRIBUTE_COLUMNS:
                raise UnprocessableError(
                    f"These customers have more than {MAX_ATTRIBUTE_COLUMNS} distinct "
                    "attributes; narrow the filter."
                )
            if len(page) < EXPORT_PAGE_SIZE * 5:
                break
            after = page[-1][0]
        attribute_columns = sorted(names - set(FIXED_COLUMNS))
        encoder: CsvEncoder | XlsxEncoder = (
            CsvEncoder() if export_format == "csv" else XlsxEncoder()
        )
        return PreparedExport(
            media_type=encoder.media_type,
            filename=f"customers.{encoder.extension}",
            body=self._stream(tenant_id, where, encoder, attribute_columns),
        )

    async def _stream(
        self,
        tenant_id: str,
        where: CustomerFilter,
        encoder: CsvEncoder | XlsxEncoder,
        attribute_columns: Sequence[str],
    ) -> AsyncIterator[bytes]:
        yield encoder.start([*FIXED_COLUMNS, *attribute_columns])
        after: str | None = None
        exported = 0
        while True:
            async with unit_of_work(self._session_factory) as session:
                rows = await ExportRepository(session).page(
                    tenant_id, where, after, EXPORT_PAGE_SIZE
                )
            if rows:
                yield encoder.rows(export_row(row, attribute_columns) for row in rows)
                exported += len(rows)
                after = rows[-1].customer_id
            if len(rows) < EXPORT_PAGE_SIZE:
                break
        yield encoder.finish()
        log.info("customers exported", tenant_id=tenant_id, rows=exported)
