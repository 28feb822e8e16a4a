"""Import a labelled Telco-like file → train, register and promote an attribute champion →
import more customers → their scores appear on ``GET /v1/customers``, through the gateway, and
so do the scores of the customers imported before the champion."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from testkit import wait_for

pytestmark = pytest.mark.e2e


def telco_csv(start: int, n: int, *, labelled: bool) -> bytes:
    rng = np.random.default_rng(start + 5)
    lines = ["customerID,tenure,Contract,MonthlyCharges" + (",Churn" if labelled else "")]
    for i in range(start, start + n):
        tenure = int(rng.integers(0, 72))
        contract = str(rng.choice(["Month-to-month", "One year", "Two year"]))
        charges = round(float(rng.uniform(20, 120)), 2)
        risk = 1.5 - tenure / 24 + (contract == "Month-to-month") * 1.5 + charges / 100
        churned = rng.uniform() < 1 / (1 + np.exp(-(risk - 1.5)))
        row = f"T-{i:05d},{tenure},{contract},{charges}"
        lines.append(row + ("," + ("Yes" if churned else "No") if labelled else ""))
    return ("\n".join(lines) + "\n").encode()


async def _owner(client: httpx.AsyncClient) -> dict[str, str]:
    email = f"telco-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    registered = await client.post(
        "/v1/auth/register", json={"tenant_name": "telco", "email": email, "password": password}
    )
    assert registered.status_code == 201, registered.text
    login = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _import(client: httpx.AsyncClient, headers: dict[str, str], content: bytes) -> None:
    mapping = (
        {"id": "customerID", "label": "Churn"} if b"Churn" in content else {"id": "customerID"}
    )
    response = await client.post(
        "/v1/customers/import",
        files={"file": ("telco.csv", content, "text/csv")},
        data={"mapping": orjson.dumps(mapping).decode()},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    import_id = response.json()["import_id"]

    async def finished() -> Any:
        body = (await client.get(f"/v1/customers/imports/{import_id}", headers=headers)).json()
        return body if body["status"] in ("succeeded", "failed") else None

    report = await wait_for(finished, timeout=120)
    assert report["status"] == "succeeded", report


async def test_imported_customers_are_scored_by_the_attribute_champion(stack: Any) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
        owner = await _owner(client)
        await _import(client, owner, telco_csv(0, 400, labelled=True))

        accepted = await client.post(
            "/v1/models/train", headers=owner, json={"source": "customers", "label": "Churn"}
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]

        async def trained() -> Any:
            body = (await client.get(f"/v1/models/jobs/{job_id}", headers=owner)).json()
            return body if body["status"] in ("succeeded", "failed") else None

        job = await wait_for(trained, timeout=300)
        assert job["status"] == "succeeded", job
        version = job["model_version"]
        promoted = await client.post(
            f"/v1/models/{version}/promote", headers=owner, json={"alias": "champion"}
        )
        assert promoted.status_code == 200, promoted.text

        new = telco_csv(1000, 20, labelled=False)
        await _import(client, owner, new)
        ids = [line.split(",")[0] for line in new.decode().splitlines()[1:]]

        async def scored() -> Any:
            page = await client.get(
                "/v1/customers", headers=owner, params={"q": "T-010", "limit": 100}
            )
            assert page.status_code == 200, page.text
            items = {c["customer_id"]: c for c in page.json()["items"]}
            done = [items[i] for i in ids if items.get(i, {}).get("churn_probability") is not None]
            return items if len(done) == len(ids) else None

        customers = await wait_for(scored, timeout=120)
        await _assert_scored_by(client, owner, [customers[i] for i in ids], version)

        # The customers imported before the champion (its own training file) are scored by it
        # too: the move has the customers service send their attributes again.
        async def earlier_scored() -> Any:
            page = await client.get(
                "/v1/customers", headers=owner, params={"q": "T-000", "limit": 100}
            )
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            done = [c for c in items if c.get("model_version") == version]
            return items if len(items) == 100 and len(done) == len(items) else None

        earlier = await wait_for(earlier_scored, timeout=120, interval=0.5)
        await _assert_scored_by(client, owner, earlier, version)


async def _assert_scored_by(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    customers: list[dict[str, Any]],
    version: str,
) -> None:
    """Each customer's stored score is the champion's on its imported attributes, as the batch
    endpoint scores them."""
    rows = [
        {
            "tenure": c["attributes"]["tenure"],
            "Contract": c["attributes"]["Contract"],
            "MonthlyCharges": c["attributes"]["MonthlyCharges"],
        }
        for c in customers
    ]
    batch = await client.post("/v1/predictions/batch", headers=headers, json={"rows": rows})
    assert batch.status_code == 200, batch.text
    expected = [p["churn_probability"] for p in batch.json()["predictions"]]
    for customer, probability in zip(customers, expected, strict=True):
        assert customer["churn_probability"] == pytest.approx(probability, abs=1e-6)
        assert customer["model_version"] == version
        assert customer["risk_level"] in ("low", "medium", "high")
