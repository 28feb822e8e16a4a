"""A worker-only process (``python -m churn_<service>.worker``, what the image's ``worker``
command runs) stops cleanly on SIGTERM, the signal Kubernetes and ``docker stop`` send."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.parametrize("service", ["customers", "alerts"])
def test_sigterm_closes_the_worker_and_exits_zero(
    service: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"CHURN_{service.upper()}_"
    env = {
        **os.environ,
        f"{prefix}DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
        f"{prefix}KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        f"{prefix}LOG_JSON": "false",
        f"{prefix}LOG_LEVEL": "INFO",
        f"{prefix}DEV_MODE": "true",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"churn_{service}.worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "workers_started" not in log.read_text():
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert code == 0, text  # an unhandled SIGTERM ends the process with -15 and no shutdown
    assert "workers_stopped" in text, text  # consumers and relay closed in order
    assert "Traceback" not in text, text
