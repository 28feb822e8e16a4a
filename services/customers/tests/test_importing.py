"""Reading customer files as streams (no database): the multipart reader, the pre-acceptance
check, the chunked CSV reader, the duplicate-id index, and the memory they take."""

from __future__ import annotations

import io
import random
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import pytest

from churn_customers.importing import (
    CHUNK_ROWS,
    ColumnMapping,
    CsvEncodingError,
    CsvFileError,
    FirstLines,
    MultipartError,
    ReadLimits,
    RowError,
    SpreadsheetFileError,
    UploadTooLargeError,
    inspect_csv,
    read_batches,
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


def read_all(
    content: bytes, id_column: str = "id", **limits: int
) -> tuple[dict[str, Any], list[RowError]]:
    file = file_of(content)
    summary = inspect_csv(file, None)
    rows: dict[str, Any] = {}
    errors: list[RowError] = []
    for batch in read_batches(
        file, "csv", summary.encoding, ColumnMapping(id=id_column), ReadLimits(**limits)
    ):
        rows.update(batch.customers)
        errors.extend(batch.errors)
    return rows, errors


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


class TestReadBatches:
    def test_batches_are_bounded_and_hold_every_valid_row_once(self) -> None:
        content = b"id,x\n" + b"".join(b"c%d,%d\n" % (i % 2500, i) for i in range(3000))
        file = file_of(content)
        sizes, seen, errors, read = [], set(), [], 0
        for batch in read_batches(
            file, "csv", "utf-8-sig", ColumnMapping(id="id"), ReadLimits(chunk_rows=700)
        ):
            sizes.append(len(batch.customers))
            assert not seen & batch.customers.keys()
            seen |= batch.customers.keys()
            errors.extend(batch.errors)
            assert batch.rows_read > read
            read = batch.rows_read
        assert max(sizes) == 700
        assert len(seen) == 2500
        assert (read, len(errors)) == (3000, 500)
        assert errors[0] == RowError(2502, "id", "c0", "repeats the id of line 2")

    def test_skipped_rows_still_count_as_seen_ids(self) -> None:
        content = b"id,x\n" + b"".join(b"c%d,%d\n" % (i % 5, i) for i in range(10))
        batches = list(
            read_batches(file_of(content), "csv", "utf-8-sig", ColumnMapping(id="id"), skip_rows=3)
        )
        customers = {k: v for b in batches for k, v in b.customers.items()}
        assert customers == {"c3": {"x": 3}, "c4": {"x": 4}}
        assert [e.line for b in batches for e in b.errors] == [7, 8, 9, 10, 11]
        assert batches[-1].rows_read == 10

    def test_long_cells_hand_a_chunk_over_early(self) -> None:
        content = b"id,x\n" + b"".join(b"c%d,%s\n" % (i, b"z" * 1000) for i in range(50))
        batches = list(
            read_batches(
                file_of(content),
                "csv",
                "utf-8-sig",
                ColumnMapping(id="id"),
                ReadLimits(chunk_chars=10_000),
            )
        )
        assert max(len(b.customers) for b in batches) <= 10
        assert sum(len(b.customers) for b in batches) == 50

    def test_a_cell_over_the_limit_rejects_its_row(self) -> None:
        content = b"id,x\nc1," + b"z" * 100 + b"\nc2,ok\n"
        rows, errors = read_all(content, max_cell_chars=64)
        assert rows == {"c2": {"x": "ok"}}
        assert (errors[0].line, errors[0].column) == (2, "x")
        assert "longer than 64" in errors[0].reason

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
        accepted = 0
        with path.open("rb") as file:
            summary = inspect_csv(file, None)
            for batch in read_batches(file, "csv", summary.encoding, ColumnMapping()):
                assert len(batch.customers) <= CHUNK_ROWS
                accepted += len(batch.customers)
        return tracemalloc.get_traced_memory()[1], accepted
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
