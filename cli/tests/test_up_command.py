"""`churn up` as a person runs it: Ctrl-C stops every process it started, the broker included,
even when the interrupt arrives twice (a terminal signals the whole foreground group, and
`uv run` / make forward it again)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from testkit import as_in_a_terminal


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (zombies excluded)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _ctrl_c_twice(proc: subprocess.Popen[str]) -> None:
    """A terminal signals the whole foreground group, and `uv run` / make forward it again."""
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)


def _terminate_twice(proc: subprocess.Popen[str]) -> None:
    """A process manager (systemd, supervisord, a container runtime) signals `churn up` only."""
    proc.terminate()
    time.sleep(0.05)
    proc.terminate()


@pytest.mark.parametrize("interrupt", [_ctrl_c_twice, _terminate_twice], ids=["ctrl-c", "sigterm"])
def test_an_interrupt_stops_every_process(
    tmp_path: Path, interrupt: Callable[[subprocess.Popen[str]], None]
) -> None:
    churn = Path(sys.executable).parent / "churn"
    proc = subprocess.Popen(
        [str(churn), "up", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,
    )
    assert proc.stdout is not None
    output = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        output.append(line)
        if "Press Ctrl-C" in line or time.monotonic() > deadline:
            break
    assert any("http://127.0.0.1:" in line for line in output), "".join(output)
    started = _children(proc.pid)
    assert len(started) == 6, started  # the broker, four services and the gateway

    try:
        interrupt(proc)
        rest, _ = proc.communicate(timeout=120)
        left = [pid for pid in started if _alive(pid)]
    finally:
        for pid in started:  # never leave a failing run's processes behind
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)

    assert "stopped." in rest
    assert left == []
