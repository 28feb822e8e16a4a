"""Batch scoring over HTTP against in-process scoring of the very same model, in one run.

Starts the embedded stack, reads the champion model the prediction service serves from its
registry, and scores the same 10,000 simulated rows in-process (``BoosterScorer.predict`` =
``Booster.predict``) and over HTTP, straight to the prediction service and through the
gateway, with every body an integrator may send: ``/v1/predictions/batch`` (columns, rows), the
Open Inference Protocol V2 (one ``[N, F]`` FP64 tensor, binary as ``tritonclient`` sends it, and
JSON) and MLflow's ``/invocations`` (``dataframe_split``, ``dataframe_records``). Each ratio is
in-process time / HTTP time (1.0 = as fast as in-process). Also reports the prediction
service's resident memory at idle and right after the batches, and times in-process single-row
and 10,000-row scoring with and without per-row drivers (TreeSHAP).

    uv run python bench/batch_scoring.py --rows 10000 --repeat 7
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
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


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system, every thread) the processes ``pids`` used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def paired(
    repeat: int, local: Callable[[], Any], remote: Callable[[], Any], servers: list[int]
) -> tuple[float, float, float, float]:
    """Best in-process and best HTTP time, run in alternation so that both see the same load
    (the machine is shared: a ratio of runs minutes apart says little); and the CPU time both
    took over all runs: in-process, this thread's; over HTTP, this process's plus the servers'
    (``servers``: the gateway and the prediction service). On a loaded machine the CPU ratio
    says what the wall-clock one would on an idle one (the hops run one after the other)."""
    local_times, remote_times = [], []
    local_cpu = remote_cpu = 0.0
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.thread_time()
        local()
        local_times.append(time.perf_counter() - started)
        local_cpu += time.thread_time() - cpu
        started, cpu, server_cpu = time.perf_counter(), time.process_time(), cpu_seconds(servers)
        remote()
        remote_times.append(time.perf_counter() - started)
        remote_cpu += time.process_time() - cpu + cpu_seconds(servers) - server_cpu
    return min(local_times), min(remote_times), local_cpu, remote_cpu


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
    json_type = {"Content-Type": "application/json"}
    oip_header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "datatype": "FP64",
                    "shape": list(matrix.shape),
                    "parameters": {"binary_data_size": matrix.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    )
    oip_json = {
        "inputs": [
            {
                "name": "features",
                "datatype": "FP64",
                "shape": list(matrix.shape),
                "data": matrix.ravel().tolist(),
            }
        ]
    }
    #: label → (path, body, headers, how to read the probabilities from the response)
    bodies: dict[str, tuple[str, bytes, dict[str, str], Callable[[httpx.Response], Any]]] = {
        "v1 columns": (BATCH, orjson.dumps({"columns": columns}), json_type, _v1),
        "v1 rows": (BATCH, orjson.dumps({"rows": rows}), json_type, _v1),
        "OIP binary [N,F]": (
            INFER,
            oip_header + matrix.astype("<f8").tobytes(),
            {"Inference-Header-Content-Length": str(len(oip_header))},
            _oip_binary,
        ),
        "OIP JSON [N,F]": (INFER, orjson.dumps(oip_json), json_type, _oip_json),
        "MLflow dataframe_split": (
            INVOCATIONS,
            orjson.dumps(
                {"dataframe_split": {"columns": list(FEATURE_NAMES), "data": matrix.tolist()}}
            ),
            json_type,
            _mlflow,
        ),
        "MLflow dataframe_records": (
            INVOCATIONS,
            orjson.dumps({"dataframe_records": rows}),
            json_type,
            _mlflow,
        ),
    }

    with tempfile.TemporaryDirectory() as tmp, Stack(StackConfig(data_dir=Path(tmp))) as stack:
        model = asyncio.run(champion(Path(tmp) / "prediction.db"))
        headers = {"Authorization": f"Bearer {token(stack.gateway_url)}"}
        in_process = best_of(args.repeat, lambda: model.predict(matrix))
        expected = model.predict(matrix)
        #: label → (in-process seconds, HTTP seconds, their CPU seconds), measured in alternation
        results: dict[str, tuple[float, float, float, float]] = {}
        pids = {p.name: p.popen.pid for p in stack._processes}
        prediction_pid = pids["prediction"]
        rss_idle = rss_mib(prediction_pid)
        rss_peak = rss_idle
        with httpx.Client(timeout=60, headers=headers) as http:
            for target, base in (
                ("service", stack.url("prediction")),
                ("gateway", stack.gateway_url),
            ):
                for label, (path, body, extra, read) in bodies.items():
                    url = f"{base}{path}"
                    response = http.post(url, content=body, headers=extra)
                    response.raise_for_status()
                    served = np.asarray(read(response), dtype=np.float64)
                    assert np.max(np.abs(served - expected)) <= 1e-9, (
                        f"{label}: served != in-process"
                    )
                    servers = [prediction_pid] + ([pids["gateway"]] if target == "gateway" else [])
                    results[f"{target}, {label}"] = paired(
                        args.repeat,
                        lambda: model.predict(matrix),
                        lambda u=url, b=body, h=extra: http.post(u, content=b, headers=h),
                        servers,
                    )
                    rss_peak = max(rss_peak, rss_mib(prediction_pid))
            one = {"features": rows[0]}
            single_http = statistics.median(
                _timed(lambda: http.post(f"{stack.url('prediction')}/v1/predictions", json=one))
                for _ in range(200)
            )
        rss_after = rss_mib(prediction_pid)

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
    print(
        "HTTP: best of the runs; ratio: in-process time measured right before each run; "
        "CPU: in-process CPU / (client + servers) CPU over all runs"
    )
    for label, (local, seconds, local_cpu, remote_cpu) in results.items():
        print(
            f"HTTP {label:<34} {args.rows / seconds:>10.0f} rows/s ({seconds * 1000:.1f} ms)"
            f"  = {local / seconds:.2f}x in-process rows/s, CPU {local_cpu / remote_cpu:.2f}x"
        )
    print(f"in-process 1 row, no drivers            {single * 1e6:>10.0f} µs")
    print(f"in-process 1 row, top-3 drivers         {single_drivers * 1e6:>10.0f} µs")
    print(f"in-process {args.rows} rows, no drivers      {in_process * 1000:>10.1f} ms")
    print(f"in-process {args.rows} rows, top-3 drivers   {batch_drivers * 1000:>10.1f} ms")
    print(f"HTTP single prediction (service)        {single_http * 1000:>10.2f} ms median")
    print("served probabilities equal in-process ones to 1e-9: yes")
    print(
        f"prediction service RSS (MiB)            idle {rss_idle:.0f}, "
        f"peak sampled {rss_peak:.0f}, after {rss_after:.0f}"
    )


BATCH = "/v1/predictions/batch"
INFER = "/v2/models/churn/infer"
INVOCATIONS = "/invocations"


def _v1(response: httpx.Response) -> list[float]:
    return [p["churn_probability"] for p in response.json()["predictions"]]


def _mlflow(response: httpx.Response) -> list[float]:
    return [p["churn_probability"] for p in response.json()["predictions"]]


def _oip_json(response: httpx.Response) -> list[float]:
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    return list(outputs["churn_probability"]["data"])


def _oip_binary(response: httpx.Response) -> Any:
    size = int(response.headers["inference-header-content-length"])
    header = orjson.loads(response.content[:size])
    offset = size
    for output in header["outputs"]:
        length = output["parameters"]["binary_data_size"]
        if output["name"] == "churn_probability":
            return np.frombuffer(response.content[offset : offset + length], dtype="<f8")
        offset += length
    raise AssertionError("no churn_probability output")


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children (the launcher may start a wrapper)."""
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
        pids.extend(int(c) for c in children)
    return total / 1024


def _timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
