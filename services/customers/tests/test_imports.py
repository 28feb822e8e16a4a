"""Customer file imports (multipart CSV and XLSX, run as durable jobs) and the labelled
training-set export."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from churn_customers.config import Settings
from churn_customers.importing import CHUNK_ROWS
from churn_customers.imports import ImportLimits, ImportService
from churn_customers.main import create_app
from churn_customers.models import customer_imports, customers
from churn_customers.repository import ImportRepository
from churn_shared.db import is_transient, unit_of_work, utcnow
from churn_shared.errors import TooManyRequestsError

CSV = (
    "customerID,plan,tenure,MonthlyCharges,TotalCharges,Churn\n"
    "A-1,basic,12,29.85,358.2,No\n"
    "A-2,pro,1,56.95, ,Yes\n"
    "A-3,pro,7,70.70\n"  # too few fields
    ",basic,3,20,60,No\n"  # blank id
    "A-1,basic,5,10,50,Yes\n"  # repeats line 2
    '"A-4","premium, annual",0,007,,No\n'
)


async def upload(
    client: httpx.AsyncClient,
    tenant: dict[str, Any],
    content: bytes,
    *,
    id_column: str | None = "customerID",
    filename: str = "customers.csv",
    content_type: str = "text/csv",
) -> httpx.Response:
    data = {"id_column": id_column} if id_column else {}
    return await client.post(
        "/v1/customers/import",
        files={"file": (filename, content, content_type)},
        data=data,
        headers=tenant["headers"],
    )


async def finished(client: httpx.AsyncClient, tenant: dict[str, Any], import_id: str) -> Any:
    """Poll the import until the app's runner has finished it."""
    for _ in range(1200):
        response = await client.get(f"/v1/customers/imports/{import_id}", headers=tenant["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"import did not finish: {body}")


async def test_import_types_cells_and_reports_bad_rows(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    response = await upload(client, tenant, CSV.encode())
    assert response.status_code == 202, response.text
    report = await finished(client, tenant, response.json()["import_id"])
    assert report["status"] == "succeeded"
    assert report["rows_total"] == 6
    assert report["rows_imported"] == 3
    assert report["rows_rejected"] == 3
    assert [e["line"] for e in report["errors"]] == [4, 5, 6]
    assert "fields" in report["errors"][0]["error"]
    assert "repeats the id of line 2" in report["errors"][2]["error"]
    assert (report["processed_rows"], report["total_rows"]) == (6, 6)
    assert (report["file_format"], report["encoding"]) == ("csv", "utf-8")

    a1 = (await client.get("/v1/customers/A-1", headers=tenant["headers"])).json()
    # The later duplicate row was rejected whole, not half-applied.
    assert a1["attributes"] == {
        "plan": "basic",
        "tenure": 12,
        "MonthlyCharges": 29.85,
        "TotalCharges": 358.2,
        "Churn": "No",
    }
    a2 = (await client.get("/v1/customers/A-2", headers=tenant["headers"])).json()
    assert a2["attributes"]["TotalCharges"] is None
    a4 = (await client.get("/v1/customers/A-4", headers=tenant["headers"])).json()
    assert a4["attributes"]["plan"] == "premium, annual"
    assert a4["attributes"]["MonthlyCharges"] == "007"  # leading zeros: a code, kept as text
    missing = await client.get("/v1/customers/A-3", headers=tenant["headers"])
    assert missing.status_code == 404


async def test_import_merges_into_existing_customers(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    created = await client.post(
        "/v1/customers",
        json={"customer_id": "c1", "attributes": {"segment": "smb", "plan": "old"}},
        headers=tenant["headers"],
    )
    assert created.status_code == 201
    response = await upload(
        client, tenant, b"customer_id,plan,seats\nc1,new,3\nc2,new,1\n", id_column=None
    )
    report = await finished(client, tenant, response.json()["import_id"])
    assert report["rows_imported"] == 2
    assert report["id_column"] == "customer_id"
    c1 = (await client.get("/v1/customers/c1", headers=tenant["headers"])).json()
    assert c1["attributes"] == {"segment": "smb", "plan": "new", "seats": 3}


async def test_customer_training_set_and_its_422(
    client: httpx.AsyncClient, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    none_yet = await client.get(
        "/v1/training-sets/customers", params={"label": "Churn"}, headers=tenant["headers"]
    )
    assert none_yet.status_code == 422
    assert none_yet.headers["content-type"].startswith("application/problem+json")
    response = await upload(client, tenant, CSV.encode())
    await finished(client, tenant, response.json()["import_id"])
    await client.post(
        "/v1/customers", json={"customer_id": "unlabelled"}, headers=tenant["headers"]
    )
    body = (
        await client.get(
            "/v1/training-sets/customers", params={"label": "Churn"}, headers=tenant["headers"]
        )
    ).json()
    assert body["id_column"] == "customer_id"
    assert body["columns"] == [
        "customer_id",
        "plan",
        "tenure",
        "MonthlyCharges",
        "TotalCharges",
        "Churn",
    ]
    assert [row[0] for row in body["rows"]] == ["A-1", "A-2", "A-4"]
    assert body["rows"][1] == ["A-2", "pro", 1, 56.95, None, "Yes"]
    missing_label = await client.get(
        "/v1/training-sets/customers", params={"label": "Nope"}, headers=tenant["headers"]
    )
    assert missing_label.status_code == 422
    # Another tenant sees neither the import nor the customers.
    theirs = await client.get(
        "/v1/training-sets/customers", params={"label": "Churn"}, headers=other_tenant["headers"]
    )
    assert theirs.status_code == 422
    report = await client.get(
        f"/v1/customers/imports/{response.json()['import_id']}",
        headers=other_tenant["headers"],
    )
    assert report.status_code == 404


async def test_a_missing_id_column_is_422_and_nothing_is_stored(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    response = await upload(client, tenant, b"id,plan\n1,basic\n")
    assert_problem(response, 422, "no column 'customerID'", "['id', 'plan']")
    assert await stored(app, tenant["id"]) == (0, [])


async def test_spreadsheets_are_415_and_a_missing_file_is_422(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    xls = await upload(
        client,
        tenant,
        b"\xd0\xcf\x11\xe0 an OLE2 file",
        filename="customers.xls",
        content_type="application/vnd.ms-excel",
    )
    assert_problem(xls, 415, "XLS", "CSV")
    broken = await upload(
        client,
        tenant,
        b"PK\x03\x04 not really a workbook",
        filename="customers.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    assert_problem(broken, 422, "not a readable XLSX")
    no_file = await client.post(
        "/v1/customers/import", data={"id_column": "x"}, headers=tenant["headers"]
    )
    assert no_file.status_code == 422
    not_multipart = await client.post(
        "/v1/customers/import", content=b"a,b\n", headers=tenant["headers"]
    )
    assert not_multipart.status_code == 422


async def test_viewers_cannot_import(client: httpx.AsyncClient, token_signer: Any) -> None:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    viewer = {"Authorization": f"Bearer {token_signer.issue(tenant_id, role='viewer')}"}
    response = await upload(client, {"headers": viewer}, CSV.encode())
    assert response.status_code == 403
    readable = await client.get(
        "/v1/training-sets/customers", params={"label": "Churn"}, headers=viewer
    )
    assert readable.status_code == 422  # allowed to read; nothing to read


async def test_oversized_upload_is_413(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    app: FastAPI = create_app(
        make_settings(max_import_bytes=2048, run_workers=False),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        big = b"customer_id,x\n" + b"".join(b"c%d,1\n" % i for i in range(1000))
        response = await upload(client, tenant, big, id_column=None)
        assert response.status_code == 413
        assert response.headers["content-type"].startswith("application/problem+json")
        small = await upload(client, tenant, b"customer_id,x\nc1,1\n", id_column=None)
        assert small.status_code == 202


def numbered_rows(count: int) -> bytes:
    return b"customer_id,x\n" + b"".join(b"c%d,%d\n" % (i, i) for i in range(count))


async def stored(app: FastAPI, tenant_id: str) -> tuple[int, list[str]]:
    """The tenant's customers (how many) and imports (their statuses), read from the database."""
    async with app.state.session_factory() as session:
        conn = await session.connection()
        count = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(customers)
                .where(customers.c.tenant_id == tenant_id)
            )
        ).scalar_one()
        statuses = (
            await conn.execute(
                sa.select(customer_imports.c.status).where(
                    customer_imports.c.tenant_id == tenant_id
                )
            )
        ).scalars()
        return count, sorted(statuses)


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    for fragment in fragments:
        assert fragment in response.json()["detail"]


async def test_a_file_over_the_row_cap_is_413_and_nothing_is_stored(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    app = create_app(
        make_settings(max_import_rows=100, run_workers=False),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        over = await upload(client, tenant, numbered_rows(101), id_column=None)
        assert_problem(over, 413, "at most 100 rows", "Nothing was imported")
        assert await stored(app, tenant["id"]) == (0, [])

        # Blank lines and the header do not count.
        at_cap = await upload(client, tenant, numbered_rows(100) + b"\n\n", id_column=None)
        assert at_cap.status_code == 202, at_cap.text
        report = await finished(client, tenant, at_cap.json()["import_id"])
        assert (report["status"], report["rows_imported"]) == ("succeeded", 100)
        assert await stored(app, tenant["id"]) == (100, ["succeeded"])


async def test_a_tenant_with_its_maximum_of_imports_in_flight_gets_429(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
    other_tenant: dict[str, Any],
) -> None:
    app = create_app(
        make_settings(max_concurrent_imports=2, stale_import_after_seconds=600, run_workers=False),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        now = utcnow()
        ids = {}
        async with unit_of_work(app.state.session_factory) as session:
            # Two in flight; one whose worker died long ago and one finished do not count.
            for status, age in (("queued", 0), ("running", 60), ("running", 3600), ("failed", 0)):
                ids[status, age] = str(uuid.uuid4())
                await ImportRepository(session).add(
                    {
                        "id": ids[status, age],
                        "tenant_id": tenant["id"],
                        "status": status,
                        "id_column": "customer_id",
                        "errors": [],
                        "created_at": now - timedelta(seconds=age),
                    }
                )
        refused = await upload(client, tenant, CSV.encode())
        assert_problem(refused, 429, "already has 2 customer imports")
        assert refused.headers["retry-after"] == "30"
        assert (await stored(app, tenant["id"]))[0] == 0

        theirs = await upload(client, other_tenant, CSV.encode())
        assert theirs.status_code == 202, theirs.text

        async with unit_of_work(app.state.session_factory) as session:
            await ImportRepository(session).update(
                tenant["id"], ids["queued", 0], status="succeeded"
            )
        accepted = await upload(client, tenant, CSV.encode())
        assert accepted.status_code == 202, accepted.text
        assert (await finished(client, tenant, accepted.json()["import_id"]))["rows_imported"] == 3


async def test_racing_uploads_of_one_tenant_never_exceed_the_cap(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    """Six uploads at once, none of them finishing (the scheduler keeps them): two are
    accepted, four refused, whatever the interleaving."""
    request = httpx.Request(
        "POST", "http://test/", files={"file": ("c.csv", b"customer_id\nc1\n", "text/csv")}
    )
    body, content_type = request.read(), request.headers["content-type"]
    # No runner: the imports stay queued.
    app = create_app(
        make_settings(run_workers=False, import_poll_seconds=3600),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as _:
        await app.state.import_runner.stop()
        factory = app.state.session_factory

        async def chunks(n: int) -> AsyncIterator[bytes]:
            # Distinct files: the same file again would be the same import.
            yield body.replace(b"customer_id\nc1\n", b"customer_id\nc%d\n" % n)

        async def start(n: int) -> str:
            for _attempt in range(10):  # as the service's error boundary retries a deadlock
                try:
                    async with unit_of_work(factory) as session:
                        service = ImportService(
                            session,
                            imports_dir=app.state.settings.imports_dir,
                            limits=ImportLimits(max_concurrent=2),
                        )
                        await service.start_import(tenant["id"], None, content_type, chunks(n))
                    return "accepted"
                except TooManyRequestsError:
                    return "refused"
                except sa.exc.DBAPIError as exc:
                    if not is_transient(exc):
                        raise
                    await asyncio.sleep(0.01)
            raise AssertionError("kept conflicting")

        outcomes = await asyncio.gather(*(start(n) for n in range(6)))
        assert sorted(outcomes) == ["accepted"] * 2 + ["refused"] * 4
        assert await stored(app, tenant["id"]) == (0, ["queued", "queued"])


async def test_undecodable_text_is_422_naming_the_byte_and_nothing_is_stored(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    response = await upload(client, tenant, b"customerID,plan\nA-1,basic\nA-2,b\x81sic\n")
    assert_problem(response, 422, "not UTF-8", "byte 81", "line 3", "CSV (UTF-8)")
    assert await stored(app, tenant["id"]) == (0, [])
    utf16 = await upload(client, tenant, "customerID\nA-1\n".encode("utf-16"))
    assert_problem(utf16, 422, "UTF-16")


async def test_windows_1252_files_are_imported_as_such(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    response = await upload(client, tenant, b"customerID,city\nA-1,K\xf6ln\n")
    assert (await finished(client, tenant, response.json()["import_id"]))["rows_imported"] == 1
    a1 = (await client.get("/v1/customers/A-1", headers=tenant["headers"])).json()
    assert a1["attributes"] == {"city": "Köln"}


async def test_a_spreadsheet_named_csv_is_read_as_what_it_is(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    ole2 = await upload(client, tenant, b"\xd0\xcf\x11\xe0 an XLS, whatever its name says")
    assert_problem(ole2, 415, "XLS")
    not_a_workbook = await upload(client, tenant, b"PK\x03\x04 a zip, whatever its name says")
    assert_problem(not_a_workbook, 422, "XLSX")


async def test_a_file_that_breaks_after_some_chunks_imports_nothing(
    app: FastAPI, client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    # Valid rows for several chunks, then a quoted field that never ends.
    content = numbered_rows(2 * CHUNK_ROWS + 10) + b'broken,"' + b"y" * (200 * 1024)
    response = await upload(client, tenant, content, id_column=None)
    assert response.status_code == 202, response.text
    report = await finished(client, tenant, response.json()["import_id"])
    assert report["status"] == "failed"
    assert f"line {2 * CHUNK_ROWS + 12}" in report["failure"]
    assert await stored(app, tenant["id"]) == (0, ["failed"])


async def test_an_upload_cut_short_is_422(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    request = httpx.Request(
        "POST", "http://test/", files={"file": ("c.csv", b"customer_id\nc1\n", "text/csv")}
    )
    body = request.read()
    response = await client.post(
        "/v1/customers/import",
        content=body[:-20],
        headers={**tenant["headers"], "content-type": request.headers["content-type"]},
    )
    assert_problem(response, 422, "cut short")
