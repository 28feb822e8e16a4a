"""The test kit's report of a shutdown that hangs: each waiting task down its await chain."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

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


async def test_the_report_follows_an_await_into_an_async_context_manager(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lifespan's shutdown runs in an async generator: the chain goes through it."""
    monkeypatch.setattr(testkit, "STUCK_REPORTS", [])

    @contextlib.asynccontextmanager
    async def lifespan(event: asyncio.Event) -> AsyncIterator[None]:
        yield
        await event.wait()  # a shutdown step that does not end

    async def app(event: asyncio.Event) -> None:
        async with lifespan(event):
            pass

    event = asyncio.Event()
    stuck = asyncio.create_task(app(event), name="lifespan")
    await asyncio.sleep(0)
    await report_stuck_tasks(0.01, "shutdown")
    event.set()
    await stuck
    line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("- lifespan:"))
    assert "__aexit__ > test_stuck_tasks.py:" in line
    assert " lifespan > locks.py:" in line
