"""A 1,000,000-row Parquet file scored through the file job API against in-process scoring.

Starts the embedded stack, writes a Parquet file of simulated customers, and measures in one
run: reading that file and scoring it in-process with the very model the prediction service
serves (the baseline), and the whole job through the gateway: upload
(``POST /v1/predictions/jobs``), the job in the service's child process, and downloading the
Parquet result. Prints rows/s of both, their ratio, the job's own phases, and the resident
memory of the prediction service's API process at idle, at its peak during the jobs and after
them, and of its job worker process (sampled every 50 ms). The first job starts the worker
(imports: seconds); the best of ``--repeat`` runs is the steady state.

    uv run python bench/prediction_jobs.py --rows 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import threading
import time
from pathlib import Path

import fastparquet
import httpx
import numpy as np
import pandas as pd
from batch_scoring import champion, token

from churn_cli.launcher import Stack, StackConfig
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import FEATURE_NAMES


def write_file(path: Path, rows: int) -> None:
    frame = pd.DataFrame(simulate_customers(rows, seed=11).features, columns=list(FEATURE_NAMES))
    frame.insert(0, "customer_id", [f"c-{i}" for i in range(rows)])
    fastparquet.write(
        str(path), frame, row_group_offsets=100_000, write_index=False, compression="SNAPPY"
    )


def rss_split(pid: int) -> tuple[float, float]:
    """Resident memory (MiB) of the prediction service's API process (the first process from
    ``pid`` down that runs ``churn_prediction.main``) and of its job worker processes. A child
    that is being forked (same command line as its parent, not yet exec'd) counts for
    neither: it shares its parent's pages."""
    service = workers = 0
    pids = [pid]
    found = False
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            command = Path(f"/proc/{current}/cmdline").read_bytes()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        kib = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        if b"churn_prediction.batch_jobs.files" in command:
            workers += kib
        elif b"churn_prediction.main" in command and not found:
            service, found = kib, True
        pids.extend(int(c) for c in children)
    return service / 1024, workers / 1024


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.service_peak = 0.0
        self.worker_peak = 0.0
        self.running = True

    def run(self) -> None:
        while self.running:
            service, workers = rss_split(self.pid)
            self.service_peak = max(self.service_peak, service)
            self.worker_peak = max(self.worker_peak, workers)
            time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Stack(StackConfig(data_dir=Path(tmp))) as stack:
        source = Path(tmp) / "customers.parquet"
        write_file(source, args.rows)
        size_mib = source.stat().st_size / 2**20
        model = asyncio.run(champion(Path(tmp) / "prediction.db"))
        headers = {"Authorization": f"Bearer {token(stack.gateway_url)}"}
        pid = {p.name: p.popen.pid for p in stack._processes}["prediction"]
        rss_idle, _ = rss_split(pid)
        local_times: list[float] = []
        job_times: list[float] = []
        phases: dict[str, float] = {}
        sampler = RssSampler(pid)
        sampler.start()
        with httpx.Client(base_url=stack.gateway_url, headers=headers, timeout=600) as http:
            for _ in range(args.repeat):
                started = time.perf_counter()
                frame = fastparquet.ParquetFile(str(source)).to_pandas(columns=list(FEATURE_NAMES))
                expected = model.predict(frame.to_numpy(dtype=np.float64))
                local_times.append(time.perf_counter() - started)

                started = time.perf_counter()
                with source.open("rb") as body:
                    accepted = http.post(
                        "/v1/predictions/jobs",
                        content=body,
                        headers={"Content-Type": "application/vnd.apache.parquet"},
                    )
                accepted.raise_for_status()
                uploaded = time.perf_counter()
                job_id = accepted.json()["job_id"]
                while True:
                    job = http.get(f"/v1/predictions/jobs/{job_id}").json()
                    if job["status"] in ("succeeded", "failed"):
                        break
                    time.sleep(0.05)
                assert job["status"] == "succeeded", job
                scored = time.perf_counter()
                result = http.get(f"/v1/predictions/jobs/{job_id}/result?format=parquet")
                result.raise_for_status()
                done = time.perf_counter()
                job_times.append(done - started)
                phases = {
                    "upload": uploaded - started,
                    "queue + child process": scored - uploaded,
                    "download": done - scored,
                }
                (Path(tmp) / "result.parquet").write_bytes(result.content)
                scores = fastparquet.ParquetFile(str(Path(tmp) / "result.parquet")).to_pandas()
                served = scores["churn_probability"].to_numpy()
                assert len(served) == args.rows
                assert np.max(np.abs(served - expected)) <= 1e-9, "served != in-process"
        sampler.running = False
        sampler.join()
        rss_after, workers_after = rss_split(pid)

    local, job_seconds = min(local_times), min(job_times)
    print(f"rows in the file                        {args.rows}")
    print(f"file size (Parquet)                     {size_mib:>10.1f} MiB")
    print(
        f"in-process read (fastparquet) + predict {args.rows / local:>10.0f} rows/s "
        f"({local:.2f} s, best of {args.repeat})"
    )
    print(
        f"job API through the gateway             {args.rows / job_seconds:>10.0f} rows/s "
        f"({job_seconds:.2f} s: upload, job, download; best of {args.repeat})"
    )
    print(f"ratio job / in-process                  {local / job_seconds:>10.2f}x")
    print(
        "phases of the last job (s)              "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in phases.items())
    )
    print("served probabilities equal in-process ones to 1e-9: yes")
    print(
        f"prediction service RSS (MiB)            idle {rss_idle:.0f}, "
        f"peak sampled during the jobs {sampler.service_peak:.0f}, after {rss_after:.0f}"
    )
    print(
        f"its job worker process RSS (MiB)        peak {sampler.worker_peak:.0f}, "
        f"idle after the jobs {workers_after:.0f}"
    )


if __name__ == "__main__":
    main()
