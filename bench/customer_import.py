"""Memory and time of a customer file import (``POST /v1/customers/import``) at 10k and 100k rows.

Runs the service's own code on a fresh customers database (SQLite file, or the MySQL/MariaDB
URL given, emptied first): the multipart body is fed in 64 KiB chunks to
:class:`ImportService` (streamed to the imports directory, hashed, checked, recorded), then
an :class:`ImportRunner` claims the import, counts the rows and writes them in batches. For
each format (CSV, XLSX) and size it prints the file size, the time and the growth of the
process's peak resident memory over its resident memory before the upload (``VmHWM`` reset
through ``/proc/self/clear_refs``). Flat memory: the growth at 100k is about the growth at
10k, plus the duplicate-id index (about ``len(id) + 35`` bytes a row).

    uv run python bench/customer_import.py
    uv run python bench/customer_import.py --mysql 'mysql+aiomysql://u:p@127.0.0.1:3306/db'

Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openpyxl
import sqlalchemy as sa

from churn_customers.importing import ReadLimits
from churn_customers.imports import (
    ImportLimits,
    ImportRunner,
    ImportService,
    RunnerSettings,
)
from churn_customers.models import customer_imports
from churn_shared.db import create_engine, create_session_factory, run_migrations, unit_of_work

MIGRATIONS = str(
    Path(__file__).resolve().parents[1] / "services/customers/src/churn_customers/migrations"
)
BOUNDARY = "bench-boundary-7f3a"
HEADER = ["customer_id", "email", "plan", "tenure", "MonthlyCharges", "TotalCharges", "Churn"]


def memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def row(i: int) -> list[Any]:
    return [
        f"cust-{i:08d}",
        f"c{i}@example.com",
        ("basic", "pro", "premium")[i % 3],
        i % 72,
        20 + (i % 100) + 0.5,
        round(i * 3.25, 2),
        "Yes" if i % 4 == 0 else "No",
    ]


def write_csv(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(",".join(HEADER) + "\n")
        for i in range(n):
            out.write(",".join(map(str, row(i))) + "\n")


def write_xlsx(path: Path, n: int) -> None:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(HEADER)
    for i in range(n):
        sheet.append(row(i))
    book.save(path)


async def body(path: Path, filename: str) -> AsyncIterator[bytes]:
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="mapping"\r\n\r\n'
        '{"id": "customer_id", "email": "email", "label": "Churn"}\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    with path.open("rb") as file:
        while block := await asyncio.to_thread(file.read, 64 * 1024):
            yield block
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def run_one(factory: Any, imports_dir: Path, path: Path, filename: str, n: int) -> None:
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    limits = ImportLimits(max_bytes=512 * 1024 * 1024, max_rows=1_000_000)
    runner = ImportRunner(
        RunnerSettings(
            imports_dir=imports_dir,
            poll_seconds=3600,
            read=ReadLimits(max_rows=1_000_000),
        ),
        factory,
    )
    before = memory_kib("VmRSS")
    reset_peak()
    started = time.perf_counter()
    async with unit_of_work(factory) as session:
        accepted = await ImportService(
            session, imports_dir=imports_dir, limits=limits
        ).start_import(
            tenant, None, f"multipart/form-data; boundary={BOUNDARY}", body(path, filename)
        )
    upload_s = time.perf_counter() - started
    await runner.claim_imports()
    await asyncio.gather(*runner.tasks.values())
    elapsed = time.perf_counter() - started
    peak = memory_kib("VmHWM")
    async with factory() as session:
        conn = await session.connection()
        status, imported = (
            await conn.execute(
                sa.select(customer_imports.c.status, customer_imports.c.rows_imported).where(
                    customer_imports.c.id == accepted.read.import_id
                )
            )
        ).one()
    assert (status, imported) == ("succeeded", n), (status, imported)
    size = (await asyncio.to_thread(path.stat)).st_size
    print(
        f"{filename:5} {n:>7} rows {size / 2**20:6.1f} MiB: "
        f"upload {upload_s:5.1f} s, total {elapsed:6.1f} s, "
        f"RSS before {before / 1024:6.1f} MiB, peak growth {(peak - before) / 1024:6.1f} MiB"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mysql", help="a MySQL/MariaDB URL to use (emptied first)")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--formats", default="csv,xlsx")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        url = args.mysql or f"sqlite+aiosqlite:///{root / 'customers.db'}"
        engine = create_engine(url)
        if args.mysql:
            async with engine.begin() as conn:
                await conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        await run_migrations(engine, MIGRATIONS)
        factory = create_session_factory(engine)
        for file_format in args.formats.split(","):
            for n in map(int, args.sizes.split(",")):
                path = root / f"customers-{n}.{file_format}"
                (write_csv if file_format == "csv" else write_xlsx)(path, n)
                await run_one(factory, root / "imports", path, file_format, n)
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
