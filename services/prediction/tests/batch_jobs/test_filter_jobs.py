"""Prediction jobs over a customer filter: a real customers app and a real prediction app in
process (the prediction app reaches customers through an ASGI transport, with the caller's
token), each on its own real database (SQLite, and MariaDB when configured), the session's
broker. Results must be the champion's scores of exactly the customers the filter selects."""

from __future__ import annotations

import io
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pandas as pd
import pytest
from asgi_lifespan import LifespanManager

from churn_customers.config import Settings as CustomersSettings
from churn_customers.main import create_app as create_customers_app
from churn_prediction.main import create_app
from testkit import empty_mysql, mysql_url, read_topic, wait_for

PROBLEM = "application/problem+json"


class EveryTenant:
    """The customers service's tenant directory: every tenant exists (auth is not running)."""

    async def unknown(self, tenant_ids: Collection[str]) -> set[str]:
        return set()


@pytest.fixture
async def customers_database_url(
    database_url: str, tmp_path: Path, sqlite_templates: Callable[[str], Any]
) -> str:
    """The customers service's database on the same backend as the prediction one."""
    if database_url.startswith("sqlite"):
        path = tmp_path / "customers.db"
        shutil.copyfile(await sqlite_templates("customers"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = mysql_url("customers")
    await empty_mysql(url, "customers")
    return url


@pytest.fixture
def two_apps(
    customers_database_url: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    make_settings: Callable[..., Any],
    token_signer: Any,
) -> Callable[..., Any]:
    """``async with two_apps(**prediction_overrides) as (customers, prediction, app)``: both
    apps running, a client for each, and the prediction app."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Any]:
        customers_app = create_customers_app(
            CustomersSettings(
                database_url=customers_database_url,
                kafka_bootstrap_servers=kafka_bootstrap,
                consumer_group=f"customers-{uuid.uuid4().hex[:8]}",
                run_workers=False,
                log_json=False,
                log_level="WARNING",
                imports_dir=tmp_path / "customer-imports",
            ),
            token_verifier=token_signer.verifier(),
            tenant_directory=EveryTenant(),
        )
        values: dict[str, Any] = {
            "run_workers": True,
            "scorer_group_id": f"scorer-{uuid.uuid4().hex[:8]}",
            "prediction_jobs_dir": tmp_path / "jobs",
            "default_model_customers": 600,
            "default_model_trees": 20,
            "job_poll_seconds": 0.2,
            "job_progress_interval_seconds": 0.2,
            "job_chunk_rows": 100,
        }
        values.update(overrides)
        async with LifespanManager(customers_app, startup_timeout=120, shutdown_timeout=120) as c:
            transport = httpx.ASGITransport(app=c.app)
            app = create_app(
                make_settings(**values),
                token_verifier=token_signer.verifier(),
                customers_transport=transport,
            )
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://customers") as customers,
                LifespanManager(app, startup_timeout=120, shutdown_timeout=120) as p,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=p.app), base_url="http://prediction"
                ) as prediction,
            ):
                yield customers, prediction, app

    return start


def auth(token_signer: Any, tenant_id: str, role: str = "analyst") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_signer.issue(tenant_id, role=role)}"}


def new_tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def events_of(customer_id: str, orders: int, failures: int, logins: int) -> list[dict[str, Any]]:
    """A customer's history: orders a month apart in 2026, payment failures, logins."""
    events: list[dict[str, Any]] = []
    for i in range(orders):
        events.append(
            {
                "type": "order_placed",
                "occurred_at": f"2026-{1 + i % 10:02d}-15T10:00:00Z",
                "properties": {"amount": 20.0 + 7 * i},
            }
        )
    for i in range(failures):
        events.append({"type": "payment_failed", "occurred_at": f"2026-10-{10 + i:02d}T09:00:00Z"})
    for i in range(logins):
        events.append({"type": "login", "occurred_at": f"2026-11-{1 + i:02d}T08:00:00Z"})
    return [{"event_id": uuid.uuid4().hex, "customer_id": customer_id, **event} for event in events]


async def seed(
    customers: httpx.AsyncClient, headers: dict[str, str], people: dict[str, dict[str, Any]]
) -> None:
    """Create each customer with its attributes, then ingest its events (if any)."""
    events: list[dict[str, Any]] = []
    for customer_id, person in people.items():
        created = await customers.post(
            "/v1/customers",
            json={"customer_id": customer_id, "attributes": person["attributes"]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        events += events_of(customer_id, *person["history"]) if person["history"] else []
    if events:
        ingested = await customers.post("/v1/events", json={"events": events}, headers=headers)
        assert ingested.status_code == 202, ingested.text


async def finished(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> Any:
    async def done() -> Any:
        job = (await client.get(f"/v1/predictions/jobs/{job_id}", headers=headers)).json()
        return job if job["status"] in ("succeeded", "failed") else None

    return await wait_for(done, timeout=120, interval=0.1)


GOLD = {"plan": "gold"}
SILVER = {"plan": "silver"}


async def test_a_filter_job_scores_exactly_the_selected_customers_like_single_predictions(
    two_apps: Callable[..., Any], token_signer: Any, kafka_bootstrap: str
) -> None:
    tenant, other = new_tenant(), new_tenant()
    headers, other_headers = auth(token_signer, tenant), auth(token_signer, other)
    people: dict[str, dict[str, Any]] = {
        "c-01": {"attributes": GOLD, "history": (6, 0, 5)},
        "c-02": {"attributes": GOLD, "history": (1, 3, 0)},
        "c-03": {"attributes": SILVER, "history": (4, 1, 2)},
        "c-04": {"attributes": GOLD, "history": (9, 1, 1)},
        "c-05": {"attributes": GOLD, "history": None},  # no events: no feature profile
        "c-06": {"attributes": GOLD, "history": (2, 0, 9)},
    }
    async with two_apps() as (customers, prediction, _app):
        await seed(customers, headers, people)
        # Another tenant's gold customers (same ids too) must stay out of the job.
        await seed(
            customers,
            other_headers,
            {
                "c-01": {"attributes": GOLD, "history": (1, 0, 0)},
                "c-99": {"attributes": GOLD, "history": (3, 0, 0)},
            },
        )
        accepted = await prediction.post(
            "/v1/predictions/jobs", json={"customers": {"attributes": GOLD}}, headers=headers
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert accepted.headers["location"] == f"/v1/predictions/jobs/{job_id}"
        assert accepted.json()["input_format"] == "customers"
        assert accepted.json()["rows_total"] == 5
        # The job names the filter it scores, exactly as submitted, and no drivers.
        assert accepted.json()["customers"] == {"attributes": GOLD}
        assert accepted.json()["drivers"] is False
        job = await finished(prediction, job_id, headers)
        assert job["status"] == "succeeded", job
        assert (job["customers"], job["drivers"]) == ({"attributes": GOLD}, False)
        assert (job["rows_total"], job["rows_scored"], job["rows_failed"]) == (5, 4, 1)
        assert job["progress"] == 100

        result = await prediction.get(f"/v1/predictions/jobs/{job_id}/result", headers=headers)
        assert result.status_code == 200, result.text
        scores = pd.read_csv(io.BytesIO(result.content), dtype={"customer_id": str})
        assert list(scores.columns) == ["line", "customer_id", "churn_probability", "risk_level"]
        assert scores["customer_id"].tolist() == ["c-01", "c-02", "c-04", "c-06"]
        # line: the customer's rank in the selection (c-05 is the 4th gold customer by id).
        assert scores["line"].tolist() == [1, 2, 3, 5]
        for row in scores.itertuples():
            single = await prediction.post(
                "/v1/predictions", json={"customer_id": row.customer_id}, headers=headers
            )
            assert single.status_code == 200, single.text
            assert row.churn_probability == pytest.approx(
                single.json()["churn_probability"], abs=1e-9
            )
            assert row.risk_level == single.json()["risk_level"]
        # The customers differ, so their scores do: the job did not score one row five times.
        assert scores["churn_probability"].nunique() == 4

        errors = pd.read_csv(
            io.BytesIO(
                (
                    await prediction.get(f"/v1/predictions/jobs/{job_id}/errors", headers=headers)
                ).content
            ),
            dtype={"customer_id": str},
        )
        assert list(errors.columns) == ["line", "customer_id", "column", "value", "error"]
        assert errors["customer_id"].tolist() == ["c-05"]
        assert errors["line"].tolist() == [4]
        assert "no feature profile" in errors["error"].iloc[0]

        parquet = await prediction.get(
            f"/v1/predictions/jobs/{job_id}/result?format=parquet", headers=headers
        )
        assert parquet.status_code == 200
        assert pd.read_parquet(io.BytesIO(parquet.content))["customer_id"].tolist() == [
            "c-01",
            "c-02",
            "c-04",
            "c-06",
        ]

        # The other tenant neither sees the job nor gets its own customers mixed in.
        hidden = await prediction.get(f"/v1/predictions/jobs/{job_id}", headers=other_headers)
        assert hidden.status_code == 404
        theirs = await prediction.post(
            "/v1/predictions/jobs?drivers=true", json={"customers": {}}, headers=other_headers
        )
        assert theirs.status_code == 202, theirs.text
        assert (theirs.json()["customers"], theirs.json()["drivers"]) == ({}, True)
        their_job = await finished(prediction, theirs.json()["job_id"], other_headers)
        assert their_job["status"] == "succeeded", their_job
        # `{}` (every customer) reads back as `{}`, not as a file job's null.
        assert (their_job["customers"], their_job["drivers"]) == ({}, True)
        their_scores = pd.read_csv(
            io.BytesIO(
                (
                    await prediction.get(
                        f"/v1/predictions/jobs/{their_job['job_id']}/result",
                        headers=other_headers,
                    )
                ).content
            )
        )
        assert their_scores["customer_id"].tolist() == ["c-01", "c-99"]
        assert "driver_1" in their_scores.columns

    # Progress on prediction.jobs.v1: queued (reading) → queued (released) → running → done.
    mine: list[dict[str, Any]] = []

    def until_done(value: bytes, _headers: Any) -> bool:
        event = orjson.loads(value)["payload"]
        if event["job_id"] != job_id:
            return False
        mine.append(event)
        return bool(event["status"] == "succeeded")

    await read_topic(kafka_bootstrap, "prediction.jobs.v1", until_done, timeout=60)
    assert mine[0]["status"] == "queued"
    assert mine[0]["rows_total"] == 5
    assert "running" in [event["status"] for event in mine]
    assert mine[-1]["rows_scored"] == 4


async def test_a_bad_filter_is_a_422_problem_and_no_job(
    two_apps: Callable[..., Any], token_signer: Any, tmp_path: Path
) -> None:
    headers = auth(token_signer, new_tenant())
    async with two_apps() as (_customers, prediction, _app):
        for body, words in [
            ({"customers": {"risk_level": ["extreme"]}}, "risk_level"),
            ({"customers": {"min_probability": 0.9, "max_probability": 0.1}}, "min_probability"),
            ({"customers": {"colour": "red"}}, "colour"),
            ({"customers": {"segment": "no-such-cohort"}}, "no-such-cohort"),
            ({"customers": "everyone"}, "customers"),
            ({"filter": {}}, "customers"),
        ]:
            refused = await prediction.post("/v1/predictions/jobs", json=body, headers=headers)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.headers["content-type"].startswith(PROBLEM)
            assert words in refused.json()["detail"], refused.json()
        broken = await prediction.post(
            "/v1/predictions/jobs",
            content=b"{not json",
            headers=headers | {"Content-Type": "application/json"},
        )
        assert broken.status_code == 422
        too_big = await prediction.post(
            "/v1/predictions/jobs",
            content=b'{"customers": {"q": "' + b"a" * 70_000 + b'"}}',
            headers=headers | {"Content-Type": "application/json"},
        )
        assert too_big.status_code == 413
    jobs_dir = tmp_path / "jobs"
    assert not jobs_dir.exists() or [p.name for p in jobs_dir.iterdir() if p.is_dir()] == []


async def test_a_filter_job_survives_a_restart_once_its_customers_are_read(
    two_apps: Callable[..., Any], token_signer: Any, tmp_path: Path
) -> None:
    tenant = new_tenant()
    headers = auth(token_signer, tenant)
    # First process: takes the request and reads the customers, but runs no jobs.
    async with two_apps(run_workers=False) as (customers, prediction, _app):
        await seed(
            customers,
            headers,
            {
                "c-1": {"attributes": GOLD, "history": (3, 0, 1)},
                "c-2": {"attributes": GOLD, "history": (1, 2, 0)},
            },
        )
        accepted = await prediction.post(
            "/v1/predictions/jobs", json={"customers": {}}, headers=headers
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]

        async def released() -> Any:
            job = (await prediction.get(f"/v1/predictions/jobs/{job_id}", headers=headers)).json()
            path = tmp_path / "jobs" / job_id / "input.csv"
            return job if path.exists() and job["status"] == "queued" else None

        await wait_for(released, timeout=60, interval=0.1)
    # Second process (the first is gone): its claim loop runs the job to the end.
    async with two_apps() as (_customers, prediction, _app):
        job = await finished(prediction, job_id, headers)
        assert job["status"] == "succeeded", job
        assert (job["rows_scored"], job["rows_failed"], job["attempts"]) == (2, 0, 1)
        # The filter was stored with the job, not kept in the first process.
        assert (job["customers"], job["drivers"]) == ({}, False)
