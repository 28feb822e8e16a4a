"""Customer file imports (multipart CSV) and the labelled training-set export."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from churn_customers.config import Settings
from churn_customers.main import create_app

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
    # In-process, background tasks finish before the response returns; poll anyway.
    for _ in range(200):
        response = await client.get(f"/v1/customers/imports/{import_id}", headers=tenant["headers"])
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("succeeded", "failed"):
            return body
    raise AssertionError("import did not finish")


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
    assert "repeats line 2" in report["errors"][2]["error"]

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


async def test_unreadable_files_fail_the_import_with_a_reason(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    response = await upload(client, tenant, b"id,plan\n1,basic\n")
    assert response.status_code == 202
    report = await finished(client, tenant, response.json()["import_id"])
    assert report["status"] == "failed"
    assert "customerID" in report["failure"]
    assert report["rows_imported"] == 0


async def test_spreadsheets_are_415_and_a_missing_file_is_422(
    client: httpx.AsyncClient, tenant: dict[str, Any]
) -> None:
    xlsx = await upload(
        client,
        tenant,
        b"PK\x03\x04 not really a workbook",
        filename="customers.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )
    assert xlsx.status_code == 415
    assert "CSV" in xlsx.json()["detail"]
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
