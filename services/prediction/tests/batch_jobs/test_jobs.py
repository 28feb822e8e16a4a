"""File batch jobs in process, against a real database (SQLite, and MariaDB when configured)
and broker: uploads, the child process scoring them, results, bad rows, limits and restarts."""

from __future__ import annotations

import io
import os
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import fastparquet
import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy as sa

from churn_prediction.batch_jobs import runner as runner_module
from churn_prediction.main import create_app
from churn_prediction.models import PredictionJob
from churn_prediction.scoring.scorer import BoosterScorer
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES
from churn_shared.db import utcnow
from testkit import read_topic, wait_for

PROBLEM = "application/problem+json"
CSV = {"Content-Type": "text/csv"}
PARQUET = {"Content-Type": "application/vnd.apache.parquet"}


def auth(token_signer: Any, tenant_id: str, role: str = "analyst") -> dict[str, str]:
    return {"Authorization": f"Bearer {token_signer.issue(tenant_id, role=role)}"}


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def job_settings(make_settings: Callable[..., Any], tmp_path: Path) -> Callable[..., Any]:
    """A small default model (fast start), the workers (the jobs' claim loop runs with them)
    and a quick job loop."""

    def make(**overrides: Any) -> Any:
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
        return make_settings(**values)

    return make


def customers_frame(n: int, seed: int = 7) -> pd.DataFrame:
    frame = pd.DataFrame(simulate_customers(n, seed=seed).features, columns=list(FEATURE_NAMES))
    frame.insert(0, "customer_id", [f"c-{i}" for i in range(n)])
    frame["notes"] = "ignored"  # columns the model does not read are left alone
    return frame


def served(app: Any, tenant: str) -> BoosterScorer:
    model: BoosterScorer = app.state.serving_models.for_tenant(tenant).model
    return model


async def finished(client: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> Any:
    async def done() -> Any:
        job = (await client.get(f"/v1/predictions/jobs/{job_id}", headers=headers)).json()
        return job if job["status"] in ("succeeded", "failed") else None

    return await wait_for(done, timeout=120, interval=0.1)


def parquet_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    fastparquet.write(str(path), frame, row_group_offsets=150, write_index=False)
    return path.read_bytes()


async def test_csv_job_scores_the_good_rows_and_lists_the_bad_ones_by_line(
    job_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    tenant: str,
    kafka_bootstrap: str,
) -> None:
    app = create_app(job_settings(), token_verifier=token_signer.verifier())
    frame = customers_frame(250)
    lines = frame.to_csv(index=False, lineterminator="\n").splitlines()
    # Line 4 (the third data row): text in a numeric column; line 9: one field too many.
    fields = lines[3].split(",")
    fields[FEATURE_NAMES.index("total_orders") + 1] = "lots"
    lines[3] = ",".join(fields)
    lines[8] = lines[8] + ",extra"
    body = ("\n".join(lines) + "\n").encode()
    headers = auth(token_signer, tenant)
    async with in_process(app) as client:
        accepted = await client.post("/v1/predictions/jobs", content=body, headers=headers | CSV)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert accepted.headers["location"] == f"/v1/predictions/jobs/{job_id}"
        assert accepted.json()["rows_total"] == 250
        # A file job names no customer filter; drivers only when asked.
        assert (accepted.json()["customers"], accepted.json()["drivers"]) == (None, False)
        job = await finished(client, job_id, headers)
        assert job["status"] == "succeeded", job
        assert (job["rows_scored"], job["rows_failed"], job["progress"]) == (248, 2, 100)
        assert (job["customers"], job["drivers"]) == (None, False)
        assert job["model_version"] == "default-1"

        errors = pd.read_csv(
            io.BytesIO(
                (await client.get(f"/v1/predictions/jobs/{job_id}/errors", headers=headers)).content
            )
        )
        assert sorted(errors["line"].tolist()) == [4, 9]
        bad_value = errors[errors["line"] == 4].iloc[0]
        assert (bad_value["column"], bad_value["value"]) == ("total_orders", "lots")

        result = await client.get(f"/v1/predictions/jobs/{job_id}/result", headers=headers)
        assert result.status_code == 200
        assert result.headers["content-type"].startswith("text/csv")
        scores = pd.read_csv(io.BytesIO(result.content))
        assert list(scores.columns) == ["line", "customer_id", "churn_probability", "risk_level"]
        kept = frame.drop(index=[2, 7])  # data rows on lines 4 and 9
        assert scores["line"].tolist() == [i + 2 for i in kept.index]
        assert scores["customer_id"].tolist() == kept["customer_id"].tolist()
        expected = served(app, tenant).predict(kept[list(FEATURE_NAMES)].to_numpy(np.float64))
        np.testing.assert_allclose(scores["churn_probability"].to_numpy(), expected, atol=1e-12)

        parquet = await client.get(
            f"/v1/predictions/jobs/{job_id}/result?format=parquet", headers=headers
        )
        assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
        assert parquet.content[:4] == b"PAR1"

        # Progress went queued → running → succeeded on prediction.jobs.v1 (relayed events).
        mine: list[dict[str, Any]] = []

        def until_done(value: bytes, _headers: Any) -> bool:
            event = orjson.loads(value)["payload"]
            if event["job_id"] != job_id:
                return False
            mine.append(event)
            return bool(event["status"] == "succeeded")

        await read_topic(kafka_bootstrap, "prediction.jobs.v1", until_done, timeout=60)
        assert [mine[0]["status"], mine[1]["status"], mine[-1]["status"]] == [
            "queued",
            "running",
            "succeeded",
        ]
        assert mine[-1]["rows_failed"] == 2
        progress = [e["progress"] for e in mine]
        assert progress == sorted(progress)


async def test_parquet_job_results_match_the_model_and_stay_in_the_tenant(
    job_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    tenant: str,
    tmp_path: Path,
) -> None:
    app = create_app(job_settings(), token_verifier=token_signer.verifier())
    frame = customers_frame(400, seed=3)
    frame.loc[5, "email_open_rate"] = np.nan
    body = parquet_bytes(frame, tmp_path / "in.parquet")
    headers = auth(token_signer, tenant)
    async with in_process(app) as client:
        accepted = await client.post(
            "/v1/predictions/jobs", content=body, headers=headers | PARQUET
        )
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        job = await finished(client, job_id, headers)
        assert job["status"] == "succeeded", job
        assert (job["rows_total"], job["rows_scored"], job["rows_failed"]) == (400, 400, 0)
        result = await client.get(
            f"/v1/predictions/jobs/{job_id}/result?format=parquet", headers=headers
        )
        assert result.status_code == 200
        (tmp_path / "out.parquet").write_bytes(result.content)
        scores = fastparquet.ParquetFile(str(tmp_path / "out.parquet")).to_pandas()
        assert scores["line"].tolist() == list(range(1, 401))
        assert scores["customer_id"].tolist() == frame["customer_id"].tolist()
        expected = served(app, tenant).predict(frame[list(FEATURE_NAMES)].to_numpy(np.float64))
        np.testing.assert_allclose(scores["churn_probability"].to_numpy(), expected, atol=1e-12)
        levels = np.where(expected >= 0.7, "high", np.where(expected >= 0.4, "medium", "low"))
        assert scores["risk_level"].tolist() == levels.tolist()

        # With ?drivers=true each score carries its top 3 drivers, exactly the model's.
        explained = await client.post(
            "/v1/predictions/jobs?drivers=true", content=body, headers=headers | PARQUET
        )
        assert explained.status_code == 202, explained.text
        assert (explained.json()["customers"], explained.json()["drivers"]) == (None, True)
        explained_job = await finished(client, explained.json()["job_id"], headers)
        assert explained_job["status"] == "succeeded", explained_job
        assert (explained_job["customers"], explained_job["drivers"]) == (None, True)
        with_drivers = pd.read_csv(
            io.BytesIO(
                (
                    await client.get(
                        f"/v1/predictions/jobs/{explained.json()['job_id']}/result",
                        headers=headers,
                    )
                ).content
            )
        )
        assert list(with_drivers.columns[4:]) == [
            f"driver_{k}{suffix}" for k in (1, 2, 3) for suffix in ("", "_contribution")
        ]
        truth = served(app, tenant).explain(frame[list(FEATURE_NAMES)].to_numpy(np.float64), 3)
        np.testing.assert_allclose(
            with_drivers["churn_probability"].to_numpy(), truth.probabilities, atol=1e-12
        )
        for k in range(3):
            assert with_drivers[f"driver_{k + 1}"].tolist() == [
                row[k]["feature"] for row in truth.drivers
            ]
            np.testing.assert_allclose(
                with_drivers[f"driver_{k + 1}_contribution"].to_numpy(),
                [row[k]["contribution"] for row in truth.drivers],
                rtol=1e-9,
            )

        # Another tenant sees nothing; a viewer may not score.
        other = auth(token_signer, f"t-{uuid.uuid4().hex[:12]}")
        for path in ("", "/result", "/errors"):
            hidden = await client.get(f"/v1/predictions/jobs/{job_id}{path}", headers=other)
            assert hidden.status_code == 404, path
            assert hidden.headers["content-type"] == PROBLEM
        viewer = auth(token_signer, tenant, role="viewer")
        refused = await client.post("/v1/predictions/jobs", content=body, headers=viewer | PARQUET)
        assert refused.status_code == 403
        assert (
            await client.get(f"/v1/predictions/jobs/{job_id}", headers=viewer)
        ).status_code == 403


async def test_limits_and_bad_files_answer_problems(
    job_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(
        job_settings(max_job_rows=100, max_job_bytes=64 * 1024),
        token_verifier=token_signer.verifier(),
    )
    headers = auth(token_signer, tenant)
    small = customers_frame(20).to_csv(index=False).encode()
    async with in_process(app) as client:
        too_many = customers_frame(150).to_csv(index=False).encode()
        answer = await client.post("/v1/predictions/jobs", content=too_many, headers=headers | CSV)
        assert answer.status_code == 413, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert "at most 100" in answer.json()["detail"]

        async def streamed() -> Any:  # no Content-Length: the limit is counted as it arrives
            for _ in range(20):
                yield b"x" * 8192

        too_big = await client.post(
            "/v1/predictions/jobs", content=streamed(), headers=headers | CSV
        )
        assert too_big.status_code == 413
        assert too_big.headers["content-type"] == PROBLEM

        wrong_type = await client.post(
            "/v1/predictions/jobs", content=small, headers=headers | {"Content-Type": "text/plain"}
        )
        assert wrong_type.status_code == 415
        assert wrong_type.headers["content-type"] == PROBLEM

        not_parquet = await client.post(
            "/v1/predictions/jobs", content=small, headers=headers | PARQUET
        )
        assert not_parquet.status_code == 422
        empty = await client.post("/v1/predictions/jobs", content=b"", headers=headers | CSV)
        assert empty.status_code == 422

        # A file none of whose columns the model reads fails the job with the reason.
        accepted = await client.post(
            "/v1/predictions/jobs", content=b"name,city\nAda,London\n", headers=headers | CSV
        )
        assert accepted.status_code == 202
        job = await finished(client, accepted.json()["job_id"], headers)
        assert job["status"] == "failed"
        assert "none of the model's features" in job["error"]
        result = await client.get(f"/v1/predictions/jobs/{job['job_id']}/result", headers=headers)
        assert result.status_code == 409
        assert result.headers["content-type"] == PROBLEM
        missing = await client.get(f"/v1/predictions/jobs/{uuid.uuid4()}", headers=headers)
        assert missing.status_code == 404

        # Nothing of the refused uploads stayed on disk; the accepted ones did.
        jobs_dir = app.state.settings.prediction_jobs_dir
        assert [p.name for p in jobs_dir.iterdir() if p.is_dir()] == [job["job_id"]]


async def submitted_and_running(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
) -> str:
    """Submit a CSV job and wait until a runner has claimed it; its id."""
    job_id = str(
        (await client.post("/v1/predictions/jobs", content=body, headers=headers | CSV)).json()[
            "job_id"
        ]
    )

    async def running() -> bool:
        job = (await client.get(f"/v1/predictions/jobs/{job_id}", headers=headers)).json()
        return bool(job["status"] == "running")

    await wait_for(running, timeout=60, interval=0.02)
    return job_id


async def test_a_job_stopped_before_it_scores_goes_back_to_the_queue(
    job_settings: Callable[..., Any],
    in_process: Any,
    token_signer: Any,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stop right after the claim (the job marked running, its spec still being read) puts
    the job back in the queue, as a stop while scoring does; it stayed "running" until its
    lease ran out (CI once caught the stop in that window)."""
    read = runner_module.JobSpec.read

    def slow_read(directory: Path) -> Any:
        time.sleep(1.0)
        return read(directory)

    monkeypatch.setattr(runner_module.JobSpec, "read", staticmethod(slow_read))
    settings = job_settings(job_lease_seconds=60.0)
    headers = auth(token_signer, tenant)
    body = customers_frame(50).to_csv(index=False).encode()
    app = create_app(settings, token_verifier=token_signer.verifier())
    async with in_process(app) as client:
        job_id = await submitted_and_running(client, body, headers)
    try:
        async with app.state.session_factory() as session:
            job = await session.get(PredictionJob, job_id)
            assert job is not None
            assert (job.status, job.attempts, job.heartbeat_at) == ("queued", 1, None)
    finally:
        await app.state.engine.dispose()  # the stopped app's engine opened a connection again


async def test_a_job_survives_a_stop_and_a_crash_and_is_given_up_after_too_many(
    job_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    settings = job_settings(job_lease_seconds=1.0, job_max_attempts=3)
    headers = auth(token_signer, tenant)
    body = customers_frame(300).to_csv(index=False).encode()
    first = create_app(settings, token_verifier=token_signer.verifier())
    async with in_process(first) as client:
        job_id = await submitted_and_running(client, body, headers)
    # A stop (SIGTERM, a deploy) ends the child and puts the job back in the queue.
    async with first.state.session_factory() as session:
        job = await session.get(PredictionJob, job_id)
        assert job is not None
        assert (job.status, job.attempts, job.heartbeat_at) == ("queued", 1, None)

        # Now as a crash leaves it: running, held by a runner that stopped writing.
        job.status = "running"
        job.heartbeat_at = utcnow() - timedelta(minutes=5)
        session.add(job)
        await session.commit()

    second = create_app(settings, token_verifier=token_signer.verifier())
    async with in_process(second) as client:
        job = await finished(client, job_id, headers)
        assert job["status"] == "succeeded", job
        assert (job["attempts"], job["rows_scored"]) == (2, 300)

        # A job the service died during too often is failed with that reason, not run again.
        again = (
            await client.post("/v1/predictions/jobs", content=body, headers=headers | CSV)
        ).json()["job_id"]
        await finished(client, again, headers)
    async with second.state.session_factory() as session:
        await session.execute(
            sa.update(PredictionJob)
            .where(PredictionJob.id == again)
            .values(status="running", attempts=3, heartbeat_at=utcnow() - timedelta(minutes=5))
        )
        await session.commit()
    third = create_app(settings, token_verifier=token_signer.verifier())
    async with in_process(third) as client:
        job = await finished(client, again, headers)
        assert job["status"] == "failed"
        assert "stopped during this job 3 times" in job["error"]


async def test_an_api_process_without_workers_stores_jobs_that_a_workers_process_runs(
    job_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    headers = auth(token_signer, tenant)
    body = customers_frame(120).to_csv(index=False).encode()
    api_only = create_app(job_settings(run_workers=False), token_verifier=token_signer.verifier())
    async with in_process(api_only) as client:
        assert api_only.state.prediction_jobs.claiming is False  # no claim loop here
        accepted = await client.post("/v1/predictions/jobs", content=body, headers=headers | CSV)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert accepted.json()["status"] == "queued"

    workers = create_app(job_settings(), token_verifier=token_signer.verifier())
    async with in_process(workers) as client:
        job = await finished(client, job_id, headers)
        assert job["status"] == "succeeded", job
        assert (job["attempts"], job["rows_scored"]) == (1, 120)


async def test_jobs_past_their_retention_are_deleted_with_their_files(
    job_settings: Callable[..., Any], in_process: Any, token_signer: Any, tenant: str
) -> None:
    app = create_app(job_settings(job_retention_days=7), token_verifier=token_signer.verifier())
    headers = auth(token_signer, tenant)
    body = customers_frame(50).to_csv(index=False).encode()
    async with in_process(app) as client:
        ids = []
        for _ in range(2):
            accepted = await client.post(
                "/v1/predictions/jobs", content=body, headers=headers | CSV
            )
            ids.append(accepted.json()["job_id"])
            assert (await finished(client, ids[-1], headers))["status"] == "succeeded"
        old, recent = ids
        async with app.state.session_factory() as session:
            await session.execute(
                sa.update(PredictionJob)
                .where(PredictionJob.id == old)
                .values(finished_at=utcnow() - timedelta(days=8))
            )
            await session.commit()
        jobs_dir = app.state.settings.prediction_jobs_dir
        # Directories no job names: one as old as the retention, one fresh (an upload going on).
        week_ago = (utcnow() - timedelta(days=8)).timestamp()
        (jobs_dir / "cut-short-upload").mkdir()
        os.utime(jobs_dir / "cut-short-upload", (week_ago, week_ago))
        (jobs_dir / "upload-in-progress").mkdir()

        assert await app.state.prediction_jobs.clean_up() == 1

        gone = await client.get(f"/v1/predictions/jobs/{old}", headers=headers)
        assert gone.status_code == 404
        kept = await client.get(f"/v1/predictions/jobs/{recent}/result", headers=headers)
        assert kept.status_code == 200
        names = {p.name for p in jobs_dir.iterdir() if p.is_dir()}
        assert names == {recent, "upload-in-progress"}
        assert await app.state.prediction_jobs.clean_up() == 0
