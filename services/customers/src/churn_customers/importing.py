"""Reading uploaded customer files (pure, no I/O): a minimal multipart/form-data splitter and a
CSV reader that types cells.

``python-multipart`` is not a dependency of this project, so the upload route reads the raw body
and :func:`parse_multipart` splits it. CSV is read with the standard library; spreadsheets
(XLSX) are refused because no spreadsheet reader is installed.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

#: Rejected rows kept with an import (the count of all rejected rows is kept too).
MAX_REPORTED_ERRORS = 50
MAX_ID_LENGTH = 64

_INTEGER = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_DECIMAL = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_XLSX_TYPES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel",
    }
)


class MultipartError(ValueError):
    """The body is not valid multipart/form-data."""


class CsvFileError(ValueError):
    """The whole file is unusable (not text, no header, no id column …)."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    filename: str | None
    content_type: str | None
    content: bytes


@dataclass(slots=True)
class FormData:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    message = Message()
    message["content-type"] = value
    params = {k.lower(): str(v) for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


def parse_multipart(body: bytes, content_type: str) -> FormData:
    """Split a multipart/form-data body into text fields and files."""
    kind, params = _header_params(content_type)
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise MultipartError("expected a multipart/form-data body with a boundary")
    delimiter = b"--" + params["boundary"].encode("latin-1")
    parts = body.split(delimiter)
    if len(parts) < 3:
        raise MultipartError("the multipart body has no parts")
    form = FormData()
    for part in parts[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        if part.startswith(b"\r\n"):
            part = part[2:]
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("a multipart part has no header block")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        message = Message()
        message["content-disposition"] = disposition
        field_name = message.get_param("name", header="content-disposition")
        if not isinstance(field_name, str):
            raise MultipartError("a multipart part has no name")
        filename = message.get_filename()
        if filename is not None:
            form.files[field_name] = UploadedFile(filename, headers.get("content-type"), content)
        else:
            form.fields[field_name] = content.decode("utf-8", errors="replace")
    return form


def looks_like_spreadsheet(upload: UploadedFile) -> bool:
    """XLSX/XLS by name, declared type or content (a ZIP or OLE container)."""
    name = (upload.filename or "").lower()
    return (
        name.endswith((".xlsx", ".xlsm", ".xls"))
        or (upload.content_type or "").split(";")[0].strip().lower() in _XLSX_TYPES
        or upload.content.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0"))
    )


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


@dataclass(slots=True)
class ParsedCustomers:
    """Valid rows by customer id, rejected rows (first ``MAX_REPORTED_ERRORS``) and counts."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    rows_total: int = 0
    rows_rejected: int = 0

    def reject(self, line: int, error: str) -> None:
        self.rows_rejected += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append({"line": line, "error": error})


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if b"\x00" in content:
        raise CsvFileError("the file is not text (is it a spreadsheet or UTF-16?); upload CSV")
    return content.decode("cp1252", errors="replace")


def parse_customer_csv(content: bytes, id_column: str) -> ParsedCustomers:
    """Read a CSV file with a header row into typed attribute rows keyed by ``id_column``.

    The delimiter is the one of ``,`` ``;`` and tab that the header line uses most.
    A row is rejected whole (never half-applied) when its field count differs from the header's,
    its id is blank or longer than 64 characters, or its id repeats an earlier row's. The id
    column is not stored as an attribute (it becomes the customer id).
    """
    text = _decode(content)
    first = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first.count)  # ties (none found) go to the comma
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
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
    id_index = header.index(id_column)
    width = len(header)
    parsed = ParsedCustomers()
    first_line: dict[str, int] = {}
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise CsvFileError(f"line {reader.line_num}: {exc}") from None
        line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line
        parsed.rows_total += 1
        if len(record) != width:
            parsed.reject(line, f"expected {width} fields, found {len(record)}")
            continue
        customer_id = record[id_index].strip()
        if not customer_id:
            parsed.reject(line, f"blank {id_column!r}")
            continue
        if len(customer_id) > MAX_ID_LENGTH:
            parsed.reject(line, f"{id_column!r} is longer than {MAX_ID_LENGTH} characters")
            continue
        if customer_id in first_line:
            parsed.reject(
                line, f"{id_column!r} {customer_id!r} repeats line {first_line[customer_id]}"
            )
            continue
        first_line[customer_id] = line
        parsed.rows[customer_id] = {
            name: typed_cell(value)
            for i, (name, value) in enumerate(zip(header, record, strict=True))
            if i != id_index
        }
    return parsed
