"""Telco end to end through the gateway of a real stack: import the customer file, train with
``POST /v1/models/train {"source": "customers", "label": "Churn"}``, follow the job, read the
registered version's cross-validated metrics.

Skipped when ``../shared/datasets`` is absent, or when the prediction service of this checkout
does not offer training yet (404 on the train route).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
TELCO = DATASETS / "telco_customer_churn.csv"

pytestmark = [
    pytest.mark.datasets,
    pytest.mark.skipif(not TELCO.is_file(), reason="../shared/datasets is absent"),
    pytest.mark.timeout(900),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from churn_cli.launcher import Stack, StackConfig

    data_dir = tmp_path_factory.mktemp("telco-stack")
    stack = Stack(StackConfig(data_dir=data_dir))
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


async def _owner(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"ds-{uuid.uuid4().hex[:10]}@example.com"
    password = f"pw-{uuid.uuid4().hex}"
    registered = await client.post(
        "/v1/auth/register",
        json={"tenant_name": "telco", "email": email, "password": password},
    )
    assert registered.status_code == 201, registered.text
    login = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _poll(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] in ("succeeded", "failed"):
            return body
        assert time.monotonic() < deadline, f"{url} still {body['status']}"
        await asyncio.sleep(0.5)


async def test_telco_imported_and_trained_through_the_api(stack: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as client:
        headers = await _owner(client)
        imported = await client.post(
            "/v1/customers/import",
            files={"file": (TELCO.name, TELCO.read_bytes(), "text/csv")},
            data={"id_column": "customerID"},
            headers=headers,
        )
        assert imported.status_code == 202, imported.text
        report = await _poll(
            client, f"/v1/customers/imports/{imported.json()['import_id']}", headers, 120
        )
        assert report["status"] == "succeeded", report
        assert report["rows_imported"] == 7043

        progress: list[dict[str, Any]] = []
        sio = socketio.AsyncClient(reconnection=False)
        sio.on("training_progress", progress.append)
        await sio.connect(
            stack.gateway_url,
            auth={"token": headers["Authorization"].split()[1]},
            transports=["websocket"],
            socketio_path="/socket.io",
        )
        started = await client.post(
            "/v1/models/train", json={"source": "customers", "label": "Churn"}, headers=headers
        )
        assert started.status_code == 202, started.text
        job_id = started.json()["job_id"]
        job = await _poll(client, f"/v1/models/jobs/{job_id}", headers, 600)
        assert job["status"] == "succeeded", job
        # Progress is pushed on the tenant's live feed too, ending with the finished job.
        deadline = time.monotonic() + 20
        while not any(p["status"] == "succeeded" for p in progress) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await sio.disconnect()
        mine = [p for p in progress if p["job_id"] == job_id]
        assert mine, "no training_progress reached the socket"
        assert mine[-1]["status"] == "succeeded"
        assert mine[-1]["progress"] == 100
        assert [p["progress"] for p in mine] == sorted(p["progress"] for p in mine)
        version = job["model_version"]
        models = (await client.get("/v1/models", headers=headers)).json()["items"]
        metrics = next(m["metrics"] for m in models if m["version"] == version)
        print(
            "\ntelco via API:",
            {
                k: metrics.get(k)
                for k in ("model", "roc_auc", "pr_auc", "brier", "brier_uncalibrated", "n_rows")
            },
        )
        assert metrics["n_rows"] == 7043
        assert metrics["roc_auc"] >= 0.84
        assert metrics["brier"] <= metrics["brier_uncalibrated"]
