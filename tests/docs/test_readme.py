"""The README's commands, run exactly as written.

Every ```bash block of README.md is executed by bash against a live platform started the way
the README says (``make up``, in a fresh data directory), so the README cannot drift from the
product again. ``make test`` is the command CI itself runs (``.ci/run``); running it from inside
the suite would recurse. A block fails the test when bash exits non-zero: the README's curl
commands use ``--fail-with-body``, so an error answer fails its block.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import as_in_a_terminal

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Blocks made only of these commands are not run here (see the module docstring).
NOT_RUN_HERE = {"make up": "the platform under test", "make test": "run by .ci/run itself"}
_FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
_UP = re.compile(r"churn platform is up: gateway (http://\S+)")


def bash_blocks() -> list[str]:
    return [m.group(1) for m in _FENCE.finditer(README.read_text())]


def _commands(block: str) -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [line for line in lines if line]


def runnable_blocks() -> list[str]:
    return [b for b in bash_blocks() if not set(_commands(b)) <= set(NOT_RUN_HERE)]


def test_the_readme_names_its_two_commands() -> None:
    commands = {c for b in bash_blocks() for c in _commands(b)}
    assert set(NOT_RUN_HERE) <= commands


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``make up`` as a newcomer runs it; yields the gateway URL it prints."""
    env = {**os.environ, "CHURN_DATA_DIR": str(tmp_path_factory.mktemp("readme-data"))}
    env.pop("CHURN_TEST_MYSQL_URL", None)
    process = subprocess.Popen(
        ["bash", "-c", "make up"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,  # else, under CI, the Ctrl-C below never arrives
    )
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 300
    url = None
    while url is None and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if match := _UP.search(line):
            url = match.group(1)
    # Keep reading what ``make up`` prints, as a terminal would: a full pipe would block its
    # next write, and with it the shutdown.
    drain = threading.Thread(target=lambda: seen.extend(process.stdout), daemon=True)
    drain.start()
    try:
        assert url, "make up did not come up:\n" + "".join(seen[-40:])
        yield url
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as the README says
        try:
            process.wait(240)
        except subprocess.TimeoutExpired:
            tree = subprocess.run(
                ["ps", "-o", "pid,stat,etime,cmd", "-g", str(process.pid)],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
            pytest.fail(
                "make up did not stop within 240 s of Ctrl-C; still running:\n"
                + tree
                + "\nlast output:\n"
                + "".join(seen[-60:])
            )


@pytest.mark.e2e
@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_a_readme_block_runs_as_written(platform: str, index: int) -> None:
    block = runnable_blocks()[index]
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=ROOT,
        env={**os.environ, "GW": platform},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"README block failed ({result.returncode}):\n{block}\n"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    )
    assert "Traceback" not in result.stdout + result.stderr
