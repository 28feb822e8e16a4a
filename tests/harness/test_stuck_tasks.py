"""The test kit's report of a shutdown that hangs: it names every waiting task and its stack."""

from __future__ import annotations

import asyncio

import pytest

from testkit import report_stuck_tasks


async def test_a_stuck_shutdown_prints_where_each_task_waits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def waits_for_ever(event: asyncio.Event) -> None:
        await event.wait()

    event = asyncio.Event()
    stuck = asyncio.create_task(waits_for_ever(event), name="consumer-that-never-stops")
    await report_stuck_tasks(0.01, "shutdown")
    event.set()
    await stuck
    err = capsys.readouterr().err
    assert "shutdown still running after 0 s" in err
    assert "consumer-that-never-stops" in err
    assert "in waits_for_ever" in err
