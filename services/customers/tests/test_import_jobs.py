"""Customer imports as durable jobs, through the API: XLSX with a column mapping, zip bombs
refused before parsing, the row error report, idempotent re-uploads, progress events, and
imports that survive a restart (resumed after their committed rows, or failed clearly)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import orjson
import sqlalchemy as sa
from fastapi import FastAPI

from churn_customers.config import Settings
from churn_customers.main import create_app
from churn_customers.models import customer_import_errors, customer_imports, customers, outbox
from churn_customers.repository import ImportRepository
from churn_shared.db import unit_of_work, utcnow

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def post(
    client: httpx.AsyncClient,
    tenant: dict[str, Any],
    content: bytes,
    *,
    filename: str = "customers.csv",
    content_type: str = "text/csv",
    mapping: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    data = {"mapping": orjson.dumps(mapping).decode()} if mapping is not None else {}
    return await client.post(
        "/v1/customers/import",
        files={"file": (filename, content, content_type)},
        data=data,
        headers={**tenant["headers"], **(headers or {})},
    )


async def finished(client: httpx.AsyncClient, tenant: dict[str, Any], import_id: str) -> Any:
    body: Any = None
    for _ in range(1200):
        response = await client.get(f"/v1/customers/imports/{import_id}", headers=tenant["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"import did not finish: {body}")


async def count_customers(app: FastAPI, tenant_id: str) -> int:
    async with app.state.session_factory() as session:
        conn = await session.connection()
        return int(
            (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(customers)
                    .where(customers.c.tenant_id == tenant_id)
                )
            ).scalar_one()
        )


def numbered(count: int, *, start: int = 0) -> bytes:
    return b"customer_id,x\n" + b"".join(b"c%d,%d\n" % (i, i) for i in range(start, count))


async def test_an_xlsx_with_a_mapping_is_imported_and_its_bad_rows_reported(
    client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    content = xlsx(
        [
            ["Customer", "E-mail", "Full name", "Plan", "Churn", "Notes"],
            ["A-1", "ann@example.com", "Ann", "pro", "Yes", "keep out"],
            ["A-2", "bob@example.com", "Bob", "=1+1", "No", "x"],  # a formula, no cached value
            ["A-1", "dup@example.com", "Dup", "pro", "No", ""],  # repeats A-1
            [None, "nobody@example.com", "?", "pro", "No", ""],  # blank id
            ["A-3", "=cmd|' /C calc'!A0", "Eve", "basic", "No", ""],
        ]
    )
    mapping = {
        "id": "Customer",
        "email": "E-mail",
        "name": "Full name",
        "label": "Churn",
        "attributes": ["Plan"],
    }
    response = await post(
        client, tenant, content, filename="c.xlsx", content_type=XLSX_TYPE, mapping=mapping
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["status"], body["file_format"], body["total_rows"]) == ("queued", "xlsx", None)
    assert body["mapping"]["label"] == "Churn"
    report = await finished(client, tenant, body["import_id"])
    assert report["status"] == "succeeded", report
    assert (report["rows_imported"], report["rows_rejected"]) == (3, 2)
    assert (report["processed_rows"], report["total_rows"]) == (5, 5)

    a1 = (await client.get("/v1/customers/A-1", headers=tenant["headers"])).json()
    assert a1["attributes"] == {
        "email": "ann@example.com",
        "name": "Ann",
        "Plan": "pro",
        "Churn": "Yes",
    }
    a2 = (await client.get("/v1/customers/A-2", headers=tenant["headers"])).json()
    assert a2["attributes"]["Plan"] is None  # formulas are never evaluated
    # The e-mail mapping feeds the customer list's search.
    found = await client.get("/v1/customers", params={"q": "ann@"}, headers=tenant["headers"])
    assert [c["customer_id"] for c in found.json()["items"]] == ["A-1"]

    errors = await client.get(
        f"/v1/customers/imports/{body['import_id']}/errors", headers=tenant["headers"]
    )
    assert errors.status_code == 200
    assert errors.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
    assert rows[0] == ["line", "column", "value", "reason"]
    assert rows[1] == ["4", "Customer", "A-1", "repeats the id of line 2"]
    assert rows[2] == ["5", "Customer", "", "blank id"]
    hidden = await client.get(
        f"/v1/customers/imports/{body['import_id']}/errors", headers=other_tenant["headers"]
    )
    assert hidden.status_code == 404


async def test_error_report_values_cannot_run_as_formulas(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    content = b'customer_id,x\n=HYPERLINK("http://evil")' + b"y" * 80 + b",1\n@SUM(A1),2\n"
    response = await post(client, tenant, content)
    report = await finished(client, tenant, response.json()["import_id"])
    assert report["rows_rejected"] == 1
    errors = await client.get(
        f"/v1/customers/imports/{report['import_id']}/errors", headers=tenant["headers"]
    )
    rows = list(csv.reader(io.StringIO(errors.content.decode("utf-8-sig"))))
    assert rows[1][2].startswith("'=HYPERLINK(")
    assert "longer than 64" in rows[1][3]


async def test_a_zip_bomb_is_413_before_parsing_and_nothing_is_stored(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b"<" * (16 * 1024 * 1024))
    response = await post(client, tenant, out.getvalue(), filename="c.xlsx", content_type=XLSX_TYPE)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "compressed" in response.json()["detail"]
    assert await count_customers(app, tenant["id"]) == 0
    imports_dir: Path = app.state.settings.imports_dir
    assert list(imports_dir.iterdir()) == []  # the upload was removed


async def test_mappings_that_do_not_fit_are_422(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    content = b"cid,mail\n1,a@b.c\n"
    missing = await post(client, tenant, content, mapping={"id": "cid", "email": "Email"})
    assert missing.status_code == 422
    assert "no column 'Email'" in missing.json()["detail"]
    malformed = await post(client, tenant, content, mapping={"id": "cid", "colour": "x"})
    assert malformed.status_code == 422
    assert "unknown keys" in malformed.json()["detail"]
    fine = await post(client, tenant, content, mapping={"id": "cid", "email": "mail"})
    assert fine.status_code == 202, fine.text


async def test_the_same_file_or_key_again_returns_the_existing_import(
    client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    first = await post(client, tenant, numbered(5))
    assert first.status_code == 202
    import_id = first.json()["import_id"]
    again = await post(client, tenant, numbered(5))
    assert (again.status_code, again.json()["import_id"]) == (200, import_id)
    # Another mapping of the same file is another import; another tenant's upload too.
    other_mapping = await post(client, tenant, numbered(5), mapping={"id": "x"})
    assert other_mapping.status_code == 202
    theirs = await post(client, other_tenant, numbered(5))
    assert theirs.status_code == 202
    # The tenant may have two imports in flight; let these two end before the next upload.
    await finished(client, tenant, import_id)
    await finished(client, tenant, other_mapping.json()["import_id"])

    key = {"Idempotency-Key": f"upload-{uuid.uuid4()}"}
    keyed = await post(client, tenant, numbered(7), headers=key)
    assert keyed.status_code == 202
    retried = await post(client, tenant, numbered(7), headers=key)
    assert (retried.status_code, retried.json()["import_id"]) == (200, keyed.json()["import_id"])
    reused = await post(client, tenant, numbered(8), headers=key)
    assert reused.status_code == 422
    assert "Idempotency-Key" in reused.json()["detail"]
    await finished(client, tenant, keyed.json()["import_id"])
    after = await post(client, tenant, numbered(7), headers=key)
    assert (after.status_code, after.json()["status"]) == (200, "succeeded")


async def test_progress_is_published_from_queued_to_succeeded(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    app = create_app(
        make_settings(run_workers=False, import_progress_interval_seconds=0),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        from churn_customers import importing

        response = await post(client, tenant, numbered(importing.CHUNK_ROWS * 2 + 5))
        import_id = response.json()["import_id"]
        report = await finished(client, tenant, import_id)
        assert report["rows_imported"] == importing.CHUNK_ROWS * 2 + 5
        async with app.state.engine.connect() as conn:
            payloads = (
                await conn.execute(
                    sa.select(outbox.c.payload)
                    .where(outbox.c.topic == "customer.imports.v1")
                    .order_by(outbox.c.id)
                )
            ).scalars()
            events = [orjson.loads(p) for p in payloads]
    mine = [e["payload"] for e in events if e["payload"]["import_id"] == import_id]
    assert all(
        e["tenant_id"] == tenant["id"] for e in events if e["payload"]["import_id"] == import_id
    )
    assert [mine[0]["status"], mine[-1]["status"]] == ["queued", "succeeded"]
    assert "running" in {e["status"] for e in mine}
    processed = [e["processed_rows"] for e in mine]
    assert processed == sorted(processed)
    assert mine[-1]["progress"] == 100
    assert mine[-1]["total_rows"] == importing.CHUNK_ROWS * 2 + 5


async def _interrupted_import(
    app: FastAPI,
    tenant_id: str,
    content: bytes,
    *,
    processed_rows: int,
    attempts: int,
    status: str = "running",
    with_file: bool = True,
    age: timedelta = timedelta(0),
) -> str:
    """An import as a process that died mid-way leaves it: ``running`` with an old heartbeat,
    its first ``processed_rows`` rows committed, its file in the imports directory."""
    import_id = str(uuid.uuid4())
    imports_dir: Path = app.state.settings.imports_dir
    imports_dir.mkdir(parents=True, exist_ok=True)
    if with_file:
        (imports_dir / import_id).write_bytes(content)
    long_ago = utcnow() - timedelta(hours=1)
    async with unit_of_work(app.state.session_factory) as session:
        await ImportRepository(session).add(
            {
                "id": import_id,
                "tenant_id": tenant_id,
                "status": status,
                "id_column": "customer_id",
                "errors": [],
                "created_at": utcnow() - age,
                "file_format": "csv",
                "encoding": "utf-8",
                "mapping": {"id": "customer_id"},
                "file_bytes": len(content),
                "rows_total": content.count(b"\n") - 1,
                "rows_imported": processed_rows,
                "processed_rows": processed_rows,
                "attempts": attempts,
                "heartbeat_at": long_ago,
            }
        )
    return import_id


async def test_an_import_a_dead_process_left_running_is_resumed_after_its_committed_rows(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    app = create_app(
        make_settings(run_workers=False, import_poll_seconds=3600),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        runner = app.state.import_runner
        await runner.stop()  # no runner while the "dead" import is set up
        content = numbered(100)
        import_id = await _interrupted_import(
            app, tenant["id"], content, processed_rows=40, attempts=1
        )
        runner.loop.start()
        report = await finished(client, tenant, import_id)
        assert report["status"] == "succeeded", report
        assert report["attempts"] == 2
        assert (report["rows_imported"], report["processed_rows"]) == (100, 100)
        # Only the rows after the checkpoint were written by this run: the first 40 were
        # committed by the process that died (here: never written, so they are absent).
        assert await count_customers(app, tenant["id"]) == 60
        assert not (app.state.settings.imports_dir / import_id).exists()


async def test_imports_stopped_too_often_or_without_their_file_fail_clearly(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    app = create_app(
        make_settings(
            run_workers=False,
            import_poll_seconds=3600,
            import_max_attempts=2,
            stale_import_after_seconds=60,
        ),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        runner = app.state.import_runner
        await runner.stop()
        given_up = await _interrupted_import(
            app, tenant["id"], numbered(10), processed_rows=4, attempts=2
        )
        gone = await _interrupted_import(
            app,
            tenant["id"],
            numbered(10),
            processed_rows=0,
            attempts=0,
            status="queued",
            with_file=False,
            age=timedelta(minutes=5),
        )
        recent = await _interrupted_import(
            app,
            tenant["id"],
            numbered(10),
            processed_rows=0,
            attempts=0,
            status="queued",
            with_file=False,
        )
        await runner.claim_imports()
        report = await finished(client, tenant, given_up)
        assert report["status"] == "failed"
        assert "stopped during this import 2 times" in report["failure"]
        report = await finished(client, tenant, gone)
        assert report["status"] == "failed"
        assert "file is gone" in report["failure"]
        # A queued import whose file another replica may hold is left alone until it is old.
        young = await client.get(f"/v1/customers/imports/{recent}", headers=tenant["headers"])
        assert young.json()["status"] == "queued"


async def test_a_stop_puts_a_running_import_back_to_queued(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    app = create_app(
        make_settings(run_workers=False, import_poll_seconds=3600),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        runner = app.state.import_runner
        await runner.stop()
        import_id = await _interrupted_import(
            app, tenant["id"], numbered(20_000), processed_rows=0, attempts=0, status="queued"
        )
        await runner.claim_imports()
        task = runner.tasks[import_id]
        for _ in range(400):
            row = (
                await client.get(f"/v1/customers/imports/{import_id}", headers=tenant["headers"])
            ).json()
            if row["processed_rows"] > 0:
                break
            await asyncio.sleep(0.02)
        await runner.stop()
        assert task.done()
        row = (
            await client.get(f"/v1/customers/imports/{import_id}", headers=tenant["headers"])
        ).json()
        assert row["status"] in ("queued", "succeeded")  # never left running
        if row["status"] == "queued":
            assert row["processed_rows"] < 20_000
            runner.loop.start()
            report = await finished(client, tenant, import_id)
            assert (report["status"], report["rows_imported"]) == ("succeeded", 20_000)
        assert await count_customers(app, tenant["id"]) == 20_000
        async with app.state.session_factory() as session:
            conn = await session.connection()
            stored_errors = (
                await conn.execute(
                    sa.select(sa.func.count())
                    .select_from(customer_import_errors)
                    .where(customer_import_errors.c.import_id == import_id)
                )
            ).scalar_one()
            status = (
                await conn.execute(
                    sa.select(customer_imports.c.status).where(customer_imports.c.id == import_id)
                )
            ).scalar_one()
        assert (stored_errors, status) == (0, "succeeded")


async def test_an_upload_racing_another_with_the_same_key_is_409_and_stores_nothing(
    app: FastAPI,
    client: httpx.AsyncClient,
    tenant: dict[str, Any],
    monkeypatch: Any,
) -> None:
    """Two uploads with one Idempotency-Key at once: both look the key up before either
    commits. The race is made deterministic by hiding the first import from the second's
    look-up; the unique key then refuses the second insert with a 409 to retry."""
    from churn_customers.imports import ImportService

    key = {"Idempotency-Key": f"race-{uuid.uuid4()}"}
    first = await post(client, tenant, numbered(3), headers=key)
    assert first.status_code == 202

    async def nothing_yet(
        self: Any, tenant_id: str, idempotency_key: Any, content_key: str
    ) -> None:
        return None

    monkeypatch.setattr(ImportService, "_existing", nothing_yet)
    second = await post(client, tenant, numbered(3), headers=key)
    assert second.status_code == 409, second.text
    assert second.headers["content-type"].startswith("application/problem+json")
    assert "Idempotency-Key" in second.json()["detail"]
    monkeypatch.undo()

    retried = await post(client, tenant, numbered(3), headers=key)
    assert (retried.status_code, retried.json()["import_id"]) == (200, first.json()["import_id"])
    async with app.state.session_factory() as session:
        conn = await session.connection()
        stored = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(customer_imports)
                .where(customer_imports.c.tenant_id == tenant["id"])
            )
        ).scalar_one()
    assert stored == 1
