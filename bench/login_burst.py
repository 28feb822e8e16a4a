"""Login latency at the chosen Argon2id parameters, and the memory a burst of logins costs.

Starts the auth service as a real ``uvicorn`` process on a fresh SQLite database, registers one
user, then measures

* the median (and p90) wall time of N sequential ``POST /v1/auth/login`` calls, and
* the growth of the process's peak resident memory (``VmHWM`` in ``/proc/<pid>/status``) during
  a burst of M concurrent logins, relative to its resident memory (``VmRSS``) just before.

    uv run python bench/login_burst.py --sequential 20 --burst 50
    uv run python bench/login_burst.py --hash-concurrency 50   # what an unbounded pool would cost

Linux only (reads /proc). Rate limits are switched off for the run (one client address).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from churn_auth.passwords import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST

EMAIL = "bench@example.com"
PASSWORD = "bench-password-4711"  # noqa: S105 - a throwaway benchmark account


def start_auth(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The auth service as its own uvicorn process, as it runs in production."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "churn_auth.main:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


async def wait_ready(base: str, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while True:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("auth did not become ready")
            await asyncio.sleep(0.2)


async def login(http: httpx.AsyncClient) -> float:
    started = time.perf_counter()
    response = await http.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


async def run(args: argparse.Namespace) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "CHURN_AUTH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/auth.db",
            "CHURN_AUTH_RATE_LIMIT_ENABLED": "false",
            "CHURN_AUTH_PASSWORD_HASH_CONCURRENCY": str(args.hash_concurrency),
            "CHURN_AUTH_LOG_LEVEL": "WARNING",
        }
        proc = start_auth(port, env)
        try:
            await wait_ready(base)
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                registered = await http.post(
                    "/v1/auth/register",
                    json={"tenant_name": "bench", "email": EMAIL, "password": PASSWORD},
                )
                registered.raise_for_status()
                for _ in range(3):  # warm up connections, caches, the thread pool
                    await login(http)
                sequential = [await login(http) for _ in range(args.sequential)]

                rss_before = proc_status_kib(proc.pid, "VmRSS")
                hwm_before = proc_status_kib(proc.pid, "VmHWM")
                started = time.perf_counter()
                burst = await asyncio.gather(*(login(http) for _ in range(args.burst)))
                burst_wall = time.perf_counter() - started
                hwm_after = proc_status_kib(proc.pid, "VmHWM")
                rss_after = proc_status_kib(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            proc.wait(15)

    ms = [t * 1000 for t in sequential]
    print(
        f"Argon2id m={ARGON2_MEMORY_KIB // 1024} MiB t={ARGON2_TIME_COST} p={ARGON2_PARALLELISM}; "
        f"hash concurrency {args.hash_concurrency}; {os.cpu_count()} CPUs"
    )
    print(
        f"sequential logins (n={len(ms)}): median {statistics.median(ms):.1f} ms, "
        f"p90 {statistics.quantiles(ms, n=10)[-1]:.1f} ms, min {min(ms):.1f} ms"
    )
    print(
        f"burst of {args.burst} concurrent logins: wall {burst_wall * 1000:.0f} ms, "
        f"slowest {max(burst) * 1000:.0f} ms"
    )
    print(
        f"memory: VmRSS before {rss_before / 1024:.1f} MiB, "
        f"VmHWM before {hwm_before / 1024:.1f} MiB, "
        f"VmHWM after {hwm_after / 1024:.1f} MiB, VmRSS after {rss_after / 1024:.1f} MiB; "
        f"peak growth during the burst {(hwm_after - rss_before) / 1024:.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequential", type=int, default=20)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--hash-concurrency", type=int, default=4)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
