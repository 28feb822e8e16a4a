"""Reading customer files as streams (no database): the multipart reader, the pre-acceptance
check, the chunked CSV reader, the duplicate-id index, and the memory they take."""

from __future__ import annotations

import io
import random
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import pytest

from churn_customers.importing import (
    CHUNK_ROWS,
    CsvEncodingError,
    CsvFileError,
    FirstLines,
    ImportReport,
    MultipartError,
    SpreadsheetFileError,
    UploadTooLargeError,
    inspect_csv,
    read_customer_chunks,
    receive_form,
)

BOUNDARY = "b0undary-x"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def multipart(file_content: bytes, *, id_column: str | None = "customerID") -> bytes:
    parts = []
    if id_column is not None:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="id_column"\r\n\r\n'
            f"{id_column}\r\n".encode()
        )
    parts.append(
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="c.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n".encode()
        + file_content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def file_of(content: bytes) -> IO[bytes]:
    return io.BytesIO(content)


def read_all(content: bytes, id_column: str = "id", **kwargs: int) -> tuple[dict, ImportReport]:  # type: ignore[type-arg]
    file = file_of(content)
    summary = inspect_csv(file, None)
    report = ImportReport()
    rows: dict = {}  # type: ignore[type-arg]
    for chunk in read_customer_chunks(file, summary.encoding, id_column, report, **kwargs):
        rows.update(chunk)
    return rows, report


class TestReceiveForm:
    # A delimiter may be split anywhere between two reads; the file must come out whole.
    @pytest.mark.parametrize("size", [1, 2, 7, 13, 64, 1 << 20])
    async def test_fields_and_file_survive_any_split(self, size: int) -> None:
        content = b"customerID,plan\r\nA-1,basic\r\n--b0undary-not-quite\r\n" * 50
        form = await receive_form(pieces(multipart(content), size), CONTENT_TYPE)
        assert form.fields == {"id_column": "customerID"}
        assert form.file is not None
        assert form.file.filename == "c.csv"
        assert form.file.size == len(content)
        assert form.file.file.read() == content
        form.file.close()

    async def test_a_large_file_is_spooled_to_disk_not_kept_in_memory(self) -> None:
        content = b"x" * (3 * 1024 * 1024)
        form = await receive_form(
            pieces(multipart(content), 256 * 1024), CONTENT_TYPE, spool_bytes=1024 * 1024
        )
        assert form.file is not None
        assert form.file.file._rolled  # type: ignore[attr-defined]
        assert form.file.file.read() == content
        form.file.close()

    async def test_a_file_over_the_byte_limit_stops_the_read(self) -> None:
        with pytest.raises(UploadTooLargeError):
            await receive_form(
                pieces(multipart(b"y" * 5000), 1000), CONTENT_TYPE, max_file_bytes=4096
            )

    async def test_a_body_cut_short_is_refused(self) -> None:
        body = multipart(b"id\n1\n")
        with pytest.raises(MultipartError, match="cut short"):
            await receive_form(pieces(body[:-30], 64), CONTENT_TYPE)

    async def test_a_body_that_is_not_multipart_is_refused(self) -> None:
        with pytest.raises(MultipartError):
            await receive_form(pieces(b"a,b\n", 64), "text/csv")
        with pytest.raises(MultipartError, match="no parts"):
            await receive_form(pieces(b"a,b\n", 64), CONTENT_TYPE)


class TestInspectCsv:
    def test_counts_rows_after_the_header_without_blank_lines(self) -> None:
        summary = inspect_csv(file_of(b'id,x\n1,"two\nlines"\n\n2,b\n'), 10)
        assert (summary.encoding, summary.rows, summary.too_many_rows) == ("utf-8-sig", 2, False)

    def test_stops_at_the_first_row_over_the_limit(self) -> None:
        content = b"id\n" + b"".join(b"%d\n" % i for i in range(1000))
        summary = inspect_csv(file_of(content), 100)
        assert summary.too_many_rows
        assert summary.rows == 101
        assert not inspect_csv(file_of(content), 1000).too_many_rows

    def test_windows_1252_text_is_read_as_such(self) -> None:
        assert inspect_csv(file_of(b"id,city\n1,K\xf6ln\n"), None).encoding == "cp1252"
        rows, _ = read_all(b"id,city\n1,K\xf6ln \x80\n")
        assert rows == {"1": {"city": "Köln €"}}

    def test_undecodable_text_names_the_byte_and_line(self) -> None:
        # 0x81 is neither UTF-8 (a lone continuation byte) nor defined in Windows-1252.
        with pytest.raises(CsvEncodingError) as caught:
            inspect_csv(file_of(b"id,x\n1,a\n2,\x81\n"), None)
        message = str(caught.value)
        assert "not UTF-8" in message
        assert "byte 81" in message
        assert "line 3" in message

    def test_a_broken_character_across_read_blocks_is_located(self) -> None:
        head = b"id,xx\n" + b"1,abcdefgh\n" * 5957
        content = head + b"2,\xe2" + b"A\n3,\x81\n"  # 0xE2 ends the first 64 KiB read block
        assert len(head) + 2 == 64 * 1024 - 1
        with pytest.raises(CsvEncodingError) as caught:
            inspect_csv(file_of(content), None)
        assert f"byte e2 at byte offset {len(head) + 2} (line 5959)" in str(caught.value)

    def test_utf16_and_binary_files_are_named(self) -> None:
        with pytest.raises(CsvEncodingError, match="UTF-16"):
            inspect_csv(file_of("id\n1\n".encode("utf-16")), None)
        with pytest.raises(CsvEncodingError, match="NUL"):
            inspect_csv(file_of(b"i\x00d\x00\n\x001\x00"), None)

    def test_a_spreadsheet_by_content_is_refused(self) -> None:
        with pytest.raises(SpreadsheetFileError):
            inspect_csv(file_of(b"PK\x03\x04rest of a zip"), None)

    def test_a_utf8_byte_order_mark_is_not_part_of_the_header(self) -> None:
        rows, _ = read_all(b"\xef\xbb\xbfid;x\r\n1;2\r\n")
        assert rows == {"1": {"x": 2}}


class TestReadCustomerChunks:
    def test_chunks_are_bounded_and_hold_every_valid_row_once(self) -> None:
        content = b"id,x\n" + b"".join(b"c%d,%d\n" % (i % 2500, i) for i in range(3000))
        file = file_of(content)
        report = ImportReport()
        sizes, seen = [], set()
        for chunk in read_customer_chunks(file, "utf-8-sig", "id", report, chunk_rows=700):
            sizes.append(len(chunk))
            assert not seen & chunk.keys()
            seen |= chunk.keys()
        assert max(sizes) == 700
        assert len(seen) == 2500
        assert (report.rows_total, report.rows_accepted, report.rows_rejected) == (3000, 2500, 500)
        assert report.errors[0] == {"line": 2502, "error": "'id' 'c0' repeats line 2"}
        assert len(report.errors) == 50

    def test_long_cells_hand_a_chunk_over_early(self) -> None:
        content = b"id,x\n" + b"".join(b"c%d,%s\n" % (i, b"z" * 1000) for i in range(50))
        report = ImportReport()
        chunks = list(
            read_customer_chunks(file_of(content), "utf-8-sig", "id", report, chunk_chars=10_000)
        )
        assert max(len(c) for c in chunks) <= 10
        assert report.rows_accepted == 50

    def test_more_rows_than_allowed_fail_the_file(self) -> None:
        content = b"id\n" + b"".join(b"%d\n" % i for i in range(20))
        with pytest.raises(CsvFileError, match="more than 10 rows"):
            read_all(content, max_rows=10)

    def test_a_file_level_error_after_some_chunks_is_raised(self) -> None:
        content = (
            b"id,x\n" + b"".join(b"c%d,1\n" % i for i in range(100)) + b'c,"x' + b"y" * (200 * 1024)
        )
        with pytest.raises(CsvFileError, match="line"):
            read_all(content, chunk_rows=10)


def test_first_lines_is_exact_and_matches_a_dict() -> None:
    rng = random.Random(7)
    keys = [f"k{rng.randrange(30_000)}-{'é' * rng.randrange(3)}" for _ in range(50_000)]
    index, expected = FirstLines(), {}
    for line, key in enumerate(keys, start=2):
        assert index.setdefault(key, line) == expected.setdefault(key, line)
    assert len(index) == len(expected)


def _write_customers(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("customer_id,plan,tenure,MonthlyCharges,TotalCharges,Churn\n")
        for i in range(rows):
            out.write(f"cust-{i:08d},pro,{i % 72},{20 + i % 100}.5,{i * 3}.25,No\n")


def _parse_peak(path: Path) -> tuple[int, int]:
    """Peak bytes allocated while checking and reading the file, and the rows read."""
    tracemalloc.start()
    try:
        with path.open("rb") as file:
            summary = inspect_csv(file, None)
            report = ImportReport()
            for chunk in read_customer_chunks(file, summary.encoding, "customer_id", report):
                assert len(chunk) <= CHUNK_ROWS
        return tracemalloc.get_traced_memory()[1], report.rows_accepted
    finally:
        tracemalloc.stop()


def test_parsing_memory_does_not_grow_with_the_rows(tmp_path: Path) -> None:
    """Reading the whole file into typed rows (the old importer) peaked at about 700 bytes per
    row: 35 MiB for 50,000 rows, 140 MiB for 200,000. Read in chunks, what stays is the
    duplicate-id index, about ``len(id) + 35`` bytes per row."""
    mib = 1024 * 1024
    peaks = {}
    for rows in (50_000, 200_000):
        path = tmp_path / f"customers-{rows}.csv"
        _write_customers(path, rows)
        peak, read = _parse_peak(path)
        assert read == rows
        peaks[rows] = peak
        print(
            f"\n{rows} rows, {path.stat().st_size / mib:.1f} MiB file: "
            f"parse peak {peak / mib:.2f} MiB ({peak / rows:.0f} B/row)"
        )
    per_extra_row = (peaks[200_000] - peaks[50_000]) / 150_000
    print(f"growth from 50k to 200k rows: {per_extra_row:.0f} B/row")
    assert peaks[200_000] < 24 * mib
    assert per_extra_row < 100  # the old importer: ~700 B/row
