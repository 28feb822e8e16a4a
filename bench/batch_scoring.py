"""Batch scoring over HTTP against in-process scoring of the very same model, in one run.

Starts the embedded stack, reads the champion model the prediction service serves from its
registry, and scores the same 10,000 simulated rows three ways: in-process
(``BoosterScorer.predict`` = ``Booster.predict``), ``POST /v1/predictions/batch`` straight to
the prediction service, and through the gateway (columnar and row bodies). Also times in-process
single-row and 10,000-row scoring with and without per-row drivers (TreeSHAP).

    uv run python bench/batch_scoring.py --rows 10000 --repeat 7
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from churn_cli.launcher import Stack, StackConfig
from churn_prediction.registry.repository import ModelRegistryRepository
from churn_prediction.scoring.scorer import BoosterScorer
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES
from churn_shared.db import create_engine, create_session_factory


def best_of(repeat: int, fn: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


async def champion(db_path: Path) -> BoosterScorer:
    engine = create_engine(f"sqlite+aiosqlite:///{db_path}")
    async with create_session_factory(engine)() as session:
        version = await ModelRegistryRepository(session).aliased_version(None, "champion")
    await engine.dispose()
    assert version is not None, "the prediction service has no champion"
    return BoosterScorer.from_string(version.artifact, version.features)


def token(gateway: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    with httpx.Client(base_url=gateway, timeout=30) as http:
        http.post(
            "/v1/auth/register",
            json={"tenant_name": "bench", "email": email, "password": "bench-password-123"},
        ).raise_for_status()
        login = http.post("/v1/auth/login", json={"email": email, "password": "bench-password-123"})
        return str(login.json()["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    matrix = simulate_customers(args.rows, seed=11).features
    columns = {name: matrix[:, i].tolist() for i, name in enumerate(FEATURE_NAMES)}
    rows = [dict(zip(FEATURE_NAMES, r.tolist(), strict=True)) for r in matrix]
    columnar_body = orjson.dumps({"columns": columns})
    row_body = orjson.dumps({"rows": rows})

    with tempfile.TemporaryDirectory() as tmp, Stack(StackConfig(data_dir=Path(tmp))) as stack:
        model = asyncio.run(champion(Path(tmp) / "prediction.db"))
        headers = {
            "Authorization": f"Bearer {token(stack.gateway_url)}",
            "Content-Type": "application/json",
        }
        in_process = best_of(args.repeat, lambda: model.predict(matrix))
        expected = model.predict(matrix)
        results: dict[str, float] = {}
        with httpx.Client(timeout=60, headers=headers) as http:
            for label, base, body in (
                ("service, columns", stack.url("prediction"), columnar_body),
                ("service, rows", stack.url("prediction"), row_body),
                ("gateway, columns", stack.gateway_url, columnar_body),
                ("gateway, rows", stack.gateway_url, row_body),
            ):
                url = f"{base}/v1/predictions/batch"
                response = http.post(url, content=body)
                response.raise_for_status()
                served = np.array([p["churn_probability"] for p in response.json()["predictions"]])
                assert np.max(np.abs(served - expected)) <= 1e-9, "served != in-process"
                results[label] = best_of(args.repeat, lambda u=url, b=body: http.post(u, content=b))
            one = {"features": rows[0]}
            single_http = statistics.median(
                _timed(lambda: http.post(f"{stack.url('prediction')}/v1/predictions", json=one))
                for _ in range(200)
            )

    one_row = matrix[:1]
    single = statistics.median(_timed(lambda: model.predict(one_row)) for _ in range(500))
    single_drivers = statistics.median(
        _timed(lambda: model.explain(one_row, 3)) for _ in range(500)
    )
    batch_drivers = best_of(3, lambda: model.explain(matrix, 3))

    print(f"rows per batch                          {args.rows}")
    print(
        f"in-process predict                      {args.rows / in_process:>10.0f} rows/s "
        f"({in_process * 1000:.1f} ms)"
    )
    for label, seconds in results.items():
        print(
            f"HTTP {label:<34} {args.rows / seconds:>10.0f} rows/s ({seconds * 1000:.1f} ms)"
            f"  = {seconds / in_process:.2f}x in-process time"
        )
    print(f"in-process 1 row, no drivers            {single * 1e6:>10.0f} µs")
    print(f"in-process 1 row, top-3 drivers         {single_drivers * 1e6:>10.0f} µs")
    print(f"in-process {args.rows} rows, no drivers      {in_process * 1000:>10.1f} ms")
    print(f"in-process {args.rows} rows, top-3 drivers   {batch_drivers * 1000:>10.1f} ms")
    print(f"HTTP single prediction (service)        {single_http * 1000:>10.2f} ms median")
    print("served probabilities equal in-process ones to 1e-9: yes")


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
