"""XLSX uploads and column mappings (no database): the zip directory checks that refuse a bomb
before any XML is parsed, reading a sheet (formulas not evaluated), and the mapping's 422s."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import openpyxl
import pytest

from churn_customers.importing import (
    ColumnMapping,
    CsvFileError,
    MappingError,
    ReadLimits,
    SpreadsheetFileError,
    XlsxFileError,
    ZipBombError,
    ZipLimits,
    count_rows,
    inspect_xlsx,
    parse_mapping,
    read_batches,
    sniff_format,
)


def workbook(rows: list[list[Any]]) -> io.BytesIO:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    out.seek(0)
    return out


def bomb(entry_bytes: int) -> io.BytesIO:
    """A zip with a workbook's name and one entry of ``entry_bytes`` zeros (compresses ~1000x)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * entry_bytes)
    out.seek(0)
    return out


def read(
    file: io.BytesIO, mapping: ColumnMapping, **limits: int
) -> tuple[dict[str, Any], list[Any]]:
    customers: dict[str, Any] = {}
    errors: list[Any] = []
    for batch in read_batches(file, "xlsx", None, mapping, ReadLimits(**limits)):
        customers.update(batch.customers)
        errors.extend(batch.errors)
    return customers, errors


class TestZipDirectory:
    def test_a_highly_compressed_entry_is_refused_before_parsing(self) -> None:
        with pytest.raises(ZipBombError, match=r"compressed .* times"):
            inspect_xlsx(bomb(8 * 1024 * 1024), ZipLimits())

    def test_the_total_uncompressed_size_is_capped(self) -> None:
        with pytest.raises(ZipBombError, match="inflates to more than"):
            inspect_xlsx(bomb(3 * 1024 * 1024), ZipLimits(max_total_bytes=2 * 1024 * 1024))

    def test_a_zip_that_is_not_a_workbook_or_not_a_zip(self) -> None:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr("word/document.xml", "<w/>")
        with pytest.raises(XlsxFileError, match="not an XLSX"):
            inspect_xlsx(out, ZipLimits())
        with pytest.raises(XlsxFileError, match="not a readable"):
            inspect_xlsx(io.BytesIO(b"PK\x03\x04 broken"), ZipLimits())

    def test_a_real_workbook_passes_and_its_header_is_read(self) -> None:
        summary = inspect_xlsx(workbook([["id", "plan", None], ["a", "x"]]), ZipLimits())
        assert summary.header == ("id", "plan")
        assert summary.declared_rows == 1


class TestSniffFormat:
    def test_by_content_first(self) -> None:
        assert sniff_format(b"PK\x03\x04", "customers.csv", "text/csv") == "xlsx"
        assert sniff_format(b"id,plan", "customers.csv", None) == "csv"
        with pytest.raises(SpreadsheetFileError, match="XLS"):
            sniff_format(b"\xd0\xcf\x11\xe0", "c.csv", None)
        with pytest.raises(SpreadsheetFileError):
            sniff_format(b"id", "c.ods", None)


class TestReadSheet:
    def test_cells_are_typed_and_formulas_are_not_evaluated(self) -> None:
        file = workbook(
            [
                ["customerID", "Email", "Plan", "Seats", "Total", "Churn"],
                ["A-1", "a@x.io", "pro", 3, 29.5, "No"],
                ["A-2", "b@x.io", "  basic ", 1, "=1+1", "Yes"],  # no cached value: empty
                [None, None, None, None, None, None],  # blank: skipped
                ["A-3", None, '=HYPERLINK("http://evil")', 2, 1.0, "No"],
            ]
        )
        mapping = ColumnMapping(id="customerID", email="Email", label="Churn")
        customers, errors = read(file, mapping)
        assert errors == []
        assert customers["A-1"] == {
            "email": "a@x.io",
            "Plan": "pro",
            "Seats": 3,
            "Total": 29.5,
            "Churn": "No",
        }
        assert customers["A-2"]["Plan"] == "basic"
        assert customers["A-2"]["Total"] is None
        assert customers["A-3"]["Plan"] is None
        file.seek(0)
        assert count_rows(file, "xlsx", None, None) == 3

    def test_rows_are_rejected_with_their_sheet_row_and_column(self) -> None:
        file = workbook(
            [
                ["id", "plan"],
                ["a", "x"],
                ["a", "y"],
                [None, "z"],
                ["b", "x" * 100],
                ["c", "ok", "stray"],
            ]
        )
        customers, errors = read(file, ColumnMapping(id="id"), max_cell_chars=64)
        assert list(customers) == ["a"]
        assert [(e.line, e.column) for e in errors] == [
            (3, "id"),
            (4, "id"),
            (5, "plan"),
            (6, None),
        ]
        assert "repeats the id of line 2" in errors[0].reason
        assert "right of the last column" in errors[3].reason

    def test_too_many_rows_fail_the_file(self) -> None:
        file = workbook([["id"], *([f"c{i}"] for i in range(20))])
        with pytest.raises(CsvFileError, match="more than 10 rows"):
            count_rows(file, "xlsx", None, 10)


class TestMapping:
    def test_the_id_column_alone_or_a_json_mapping(self) -> None:
        assert parse_mapping(None, None) == ColumnMapping(id="customer_id")
        assert parse_mapping(None, " cid ") == ColumnMapping(id="cid")
        mapping = parse_mapping(
            '{"id": "cid", "email": "Mail", "name": null, "label": "Churn", '
            '"attributes": ["plan"]}',
            None,
        )
        assert mapping == ColumnMapping(id="cid", email="Mail", label="Churn", attributes=("plan",))
        resolved = mapping.resolve(["cid", "Mail", "plan", "Churn", "ignored"])
        assert resolved.stored == ((1, "email"), (2, "plan"), (3, "Churn"))

    @pytest.mark.parametrize(
        ("text", "id_column", "message"),
        [
            ("not json", None, "not JSON"),
            ("[1]", None, "JSON object"),
            ('{"email": "e"}', None, "mapping.id"),
            ('{"id": "a", "colour": "x"}', None, "unknown keys"),
            ('{"id": "a", "attributes": "b"}', None, "list of column names"),
            ('{"id": "a", "email": "a"}', None, "more than once"),
            ('{"id": "a"}', "a", "not both"),
            (None, "  ", "blank"),
        ],
    )
    def test_malformed_mappings_say_what_is_wrong(
        self, text: str | None, id_column: str | None, message: str
    ) -> None:
        with pytest.raises(MappingError, match=message):
            parse_mapping(text, id_column)

    def test_columns_the_header_lacks_are_named(self) -> None:
        with pytest.raises(MappingError, match="no column 'Mail'"):
            ColumnMapping(id="cid", email="Mail").resolve(["cid", "plan"])
        with pytest.raises(MappingError, match="more than one column would be stored"):
            ColumnMapping(id="cid", email="Mail").resolve(["cid", "Mail", "email"])
