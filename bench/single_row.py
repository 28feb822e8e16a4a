"""Single-row scoring throughput against the same server's trivial ``GET /livez``, in one run.

Starts the embedded stack and, straight to the prediction service and under the same
concurrency, drives ``GET /livez`` (no dependencies: the floor of the framework and the
middleware) and ``POST /v1/predictions`` with raw features (authentication, parsing, one
TreeSHAP pass with the top drivers, the tenant's recommendation rules, the response model).
Prints requests/s of each and their ratio (the target is ≥ 0.5), and the same for
``POST /v2/models/churn/infer`` with one row. Client and server share the machine's cores, so
the ratio, not the absolute figures, is the result.

    uv run python bench/single_row.py --seconds 5 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from churn_cli.launcher import Stack, StackConfig
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES


def token(gateway: str) -> str:
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    with httpx.Client(base_url=gateway, timeout=30) as http:
        http.post(
            "/v1/auth/register",
            json={"tenant_name": "bench", "email": email, "password": "bench-password-123"},
        ).raise_for_status()
        login = http.post("/v1/auth/login", json={"email": email, "password": "bench-password-123"})
        return str(login.json()["access_token"])


async def drive(
    base: str,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    body: Any,
    seconds: float,
    concurrency: int,
) -> float:
    """Requests per second over ``seconds`` with ``concurrency`` requests in flight."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as http:
        # Warm up: connections open, caches filled.
        for _ in range(concurrency):
            (await http.request(method, path, json=body)).raise_for_status()
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await http.request(method, path, json=body)
                response.raise_for_status()
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    row = dict(zip(FEATURE_NAMES, simulate_customers(1, seed=4).features[0].tolist(), strict=True))
    infer_body = {
        "inputs": [
            {"name": name, "datatype": "FP64", "shape": [1], "data": [value]}
            for name, value in row.items()
        ]
    }
    with tempfile.TemporaryDirectory() as tmp, Stack(StackConfig(data_dir=Path(tmp))) as stack:
        base = stack.url("prediction")
        headers = {"Authorization": f"Bearer {token(stack.gateway_url)}"}
        common = {"seconds": args.seconds, "concurrency": args.concurrency, "headers": headers}
        results: dict[str, float] = {}
        for label, method, path, body in (
            ("GET /livez", "GET", "/livez", None),
            ("POST /v1/predictions", "POST", "/v1/predictions", {"features": row}),
            ("POST /v2/models/churn/infer (1 row)", "POST", "/v2/models/churn/infer", infer_body),
            ("GET /livez (again)", "GET", "/livez", None),
        ):
            results[label] = asyncio.run(drive(base, method, path, body=body, **common))
    floor = (results["GET /livez"] + results["GET /livez (again)"]) / 2
    print(f"concurrency {args.concurrency}, {args.seconds:.0f} s each, prediction service direct")
    for label, rate in results.items():
        print(f"{label:<40} {rate:>8.0f} req/s  = {rate / floor:.2f}x GET /livez")


if __name__ == "__main__":
    main()
