"""The test kit's report of a shutdown that hangs: each waiting task down its await chain."""

from __future__ import annotations

import asyncio

import pytest

import testkit
from testkit import report_stuck_tasks


async def test_a_stuck_shutdown_reports_where_each_task_waits(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(testkit, "STUCK_REPORTS", [])

    async def inner_step(event: asyncio.Event) -> None:
        await event.wait()

    async def waits_for_ever(event: asyncio.Event) -> None:
        await inner_step(event)

    event = asyncio.Event()
    stuck = asyncio.create_task(waits_for_ever(event), name="consumer-that-never-stops")
    await asyncio.sleep(0)
    await report_stuck_tasks(0.01, "shutdown")
    event.set()
    await stuck
    err = capsys.readouterr().err
    assert "test_a_stuck_shutdown_reports_where_each_task_waits" in err
    assert "shutdown after 0 s" in err
    line = next(x for x in err.splitlines() if x.startswith("- consumer-that-never-stops:"))
    # Down the chain, not only the task's own coroutine: to the Event it really waits on.
    assert "waits_for_ever > test_stuck_tasks.py:" in line
    assert "inner_step > locks.py:" in line
    assert line.endswith(" wait > a future")
    assert [err.strip()] == testkit.STUCK_REPORTS
