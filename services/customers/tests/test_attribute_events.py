"""``CustomerAttributesChangedV1``: every write of customers' attributes (an import batch, a
create or an update through the API) puts one event per customer in the outbox, in the
writing transaction (real database; the relay does not run, so the outbox keeps them)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from churn_customers.attributes import MAX_EVENT_TEXT_CHARS
from churn_customers.config import Settings
from churn_customers.importing import CHUNK_ROWS, Batch
from churn_customers.imports import LostImportError, _Progress
from churn_customers.main import create_app
from churn_customers.models import customers, outbox
from churn_customers.repository import ImportRepository
from churn_shared.contracts import CustomerAttributesChangedV1
from churn_shared.db import unit_of_work, utcnow

TOPIC = "customer.attributes.v1"


async def attribute_events(app: FastAPI, tenant_id: str) -> list[dict[str, Any]]:
    """This tenant's envelopes on the attributes topic still in the outbox, in order."""
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(outbox.c.message_key, outbox.c.payload)
            .where(outbox.c.topic == TOPIC)
            .order_by(outbox.c.id)
        )
        envelopes = [(key, orjson.loads(payload)) for key, payload in rows.all()]
    mine = [env | {"message_key": key} for key, env in envelopes if env["tenant_id"] == tenant_id]
    for envelope in mine:
        CustomerAttributesChangedV1.model_validate(envelope["payload"])  # the contract's shape
    return mine


async def stored_attributes(app: FastAPI, tenant_id: str) -> dict[str, dict[str, Any]]:
    async with app.state.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(customers.c.customer_id, customers.c.attributes).where(
                customers.c.tenant_id == tenant_id
            )
        )
        return {cid: dict(attributes or {}) for cid, attributes in rows.all()}


async def import_csv(client: httpx.AsyncClient, tenant: dict[str, Any], content: bytes) -> Any:
    response = await client.post(
        "/v1/customers/import",
        files={"file": ("customers.csv", content, "text/csv")},
        data={"mapping": orjson.dumps({"id": "customer_id", "label": "Churn"}).decode()},
        headers=tenant["headers"],
    )
    assert response.status_code == 202, response.text
    import_id = response.json()["import_id"]
    for _ in range(1200):
        body = (
            await client.get(f"/v1/customers/imports/{import_id}", headers=tenant["headers"])
        ).json()
        if body["status"] in ("succeeded", "failed"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"import did not finish: {body}")


@pytest.fixture
def app(make_settings: Callable[..., Settings], token_signer: Any) -> FastAPI:
    return create_app(make_settings(run_workers=False), token_verifier=token_signer.verifier())


async def test_an_import_publishes_one_event_per_imported_row_with_its_stored_attributes(
    app: FastAPI, in_process: Any, tenant: dict[str, Any], other_tenant: dict[str, Any]
) -> None:
    rows = 2 * CHUNK_ROWS + 7  # three batches, three transactions
    content = b"customer_id,tenure,Contract,Churn\n" + b"".join(
        b"c%d,%d,%s,%s\n" % (i, i % 72, b"Month-to-month" if i % 2 else b"Two year", b"No")
        for i in range(rows)
    )
    content += b",5,One year,No\n"  # no id: rejected, so no event
    async with in_process(app) as client:
        # An existing customer: the import merges into its attributes, the event says so.
        created = await client.post(
            "/v1/customers",
            json={"customer_id": "c1", "attributes": {"plan": "gold"}},
            headers=tenant["headers"],
        )
        assert created.status_code == 201, created.text
        before = len(await attribute_events(app, tenant["id"]))
        report = await import_csv(client, tenant, content)
        assert report["status"] == "succeeded", report
        assert (report["rows_imported"], report["rows_rejected"]) == (rows, 1)

    events = (await attribute_events(app, tenant["id"]))[before:]
    assert len(events) == rows
    assert {e["event_type"] for e in events} == {"CustomerAttributesChangedV1"}
    assert {e["payload"]["import_id"] for e in events} == {report["import_id"]}
    assert [e["message_key"] for e in events] == [e["payload"]["customer_id"] for e in events]
    assert len({e["payload"]["customer_id"] for e in events}) == rows
    stored = await stored_attributes(app, tenant["id"])
    assert {e["payload"]["customer_id"]: e["payload"]["attributes"] for e in events} == stored
    assert stored["c1"] == {
        "plan": "gold",
        "tenure": 1,
        "Contract": "Month-to-month",
        "Churn": "No",
    }
    assert await attribute_events(app, other_tenant["id"]) == []


async def test_a_resumed_import_publishes_events_only_for_the_rows_it_writes(
    make_settings: Callable[..., Settings],
    token_signer: Any,
    in_process: Any,
    tenant: dict[str, Any],
) -> None:
    from datetime import timedelta

    app = create_app(
        make_settings(run_workers=False, import_poll_seconds=3600),
        token_verifier=token_signer.verifier(),
    )
    async with in_process(app) as client:
        runner = app.state.import_runner
        await runner.stop()
        content = b"customer_id,x\n" + b"".join(b"c%d,%d\n" % (i, i) for i in range(100))
        import_id = str(uuid.uuid4())
        imports_dir = app.state.settings.imports_dir
        imports_dir.mkdir(parents=True, exist_ok=True)
        (imports_dir / import_id).write_bytes(content)
        async with unit_of_work(app.state.session_factory) as session:
            await ImportRepository(session).add(
                {
                    "id": import_id,
                    "tenant_id": tenant["id"],
                    "status": "running",
                    "id_column": "customer_id",
                    "errors": [],
                    "created_at": utcnow(),
                    "file_format": "csv",
                    "encoding": "utf-8",
                    "mapping": {"id": "customer_id"},
                    "file_bytes": len(content),
                    "rows_total": 100,
                    "rows_imported": 40,
                    "processed_rows": 40,
                    "attempts": 1,
                    "heartbeat_at": utcnow() - timedelta(hours=1),
                }
            )
        runner.loop.start()
        for _ in range(1200):
            body = (
                await client.get(f"/v1/customers/imports/{import_id}", headers=tenant["headers"])
            ).json()
            if body["status"] != "running" and body["status"] != "queued":
                break
            await asyncio.sleep(0.05)
        assert body["status"] == "succeeded", body

    events = await attribute_events(app, tenant["id"])
    assert sorted(e["payload"]["customer_id"] for e in events) == sorted(
        f"c{i}" for i in range(40, 100)
    )


async def test_a_batch_whose_transaction_fails_leaves_neither_customers_nor_events(
    app: FastAPI, in_process: Any, tenant: dict[str, Any]
) -> None:
    async with in_process(app):
        runner = app.state.import_runner
        await runner.stop()
        import_id = str(uuid.uuid4())
        async with unit_of_work(app.state.session_factory) as session:
            await ImportRepository(session).add(
                {
                    "id": import_id,
                    "tenant_id": tenant["id"],
                    "status": "running",
                    "id_column": "customer_id",
                    "errors": [],
                    "created_at": utcnow(),
                    "file_format": "csv",
                    "encoding": "utf-8",
                    "mapping": {"id": "customer_id"},
                    "file_bytes": 1,
                    "rows_total": 2,
                    "rows_imported": 0,
                    "processed_rows": 0,
                    "attempts": 2,  # another runner holds it now
                }
            )
        batch = Batch(customers={"a": {"x": 1}, "b": {"x": 2}}, rows_read=2)
        with pytest.raises(LostImportError):
            await runner._write(
                tenant["id"], import_id, 1, batch, _Progress(0, 0, 0, []), publish=False
            )
    assert await stored_attributes(app, tenant["id"]) == {}
    assert await attribute_events(app, tenant["id"]) == []


async def test_the_api_publishes_attribute_changes_and_not_a_patch_that_changes_nothing(
    app: FastAPI, in_process: Any, tenant: dict[str, Any]
) -> None:
    async with in_process(app) as client:
        bare = await client.post(
            "/v1/customers", json={"customer_id": "bare"}, headers=tenant["headers"]
        )
        assert bare.status_code == 201, bare.text
        assert await attribute_events(app, tenant["id"]) == []
        created = await client.post(
            "/v1/customers",
            json={"customer_id": "c1", "attributes": {"plan": "gold", "seats": 3}},
            headers=tenant["headers"],
        )
        assert created.status_code == 201, created.text
        patched = await client.patch(
            "/v1/customers/c1",
            json={"attributes": {"seats": None, "notes": "n" * (MAX_EVENT_TEXT_CHARS + 1)}},
            headers=tenant["headers"],
        )
        assert patched.status_code == 200, patched.text
        same = await client.patch(
            "/v1/customers/c1", json={"attributes": {"plan": "gold"}}, headers=tenant["headers"]
        )
        assert same.status_code == 200, same.text

    events = [e["payload"] for e in await attribute_events(app, tenant["id"])]
    assert [(e["customer_id"], e["import_id"], e["attributes"]) for e in events] == [
        ("c1", None, {"plan": "gold", "seats": 3}),
        # The whole set after the change; text too long for a model travels as null.
        ("c1", None, {"plan": "gold", "notes": None}),
    ]
    assert (await stored_attributes(app, tenant["id"]))["c1"]["notes"] == "n" * (
        MAX_EVENT_TEXT_CHARS + 1
    )
