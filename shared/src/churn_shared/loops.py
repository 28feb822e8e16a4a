"""A background loop that survives its own errors and stops cleanly, written once.

Periodic housekeeping (profile refresh, pruning) needs the same few things: run a step now and
then every ``interval`` seconds, log a failed round and carry on, and cancel promptly on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from churn_shared.logging import get_logger

_log = get_logger(__name__)


class PeriodicLoop:
    """Runs ``step`` at start and then every ``interval_seconds`` (0 disables the loop)."""

    def __init__(
        self, name: str, step: Callable[[], Awaitable[Any]], *, interval_seconds: float
    ) -> None:
        self._name = name
        self._step = step
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or broker hiccup must not end the loop
                _log.exception("periodic_step_failed", loop=self._name)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
