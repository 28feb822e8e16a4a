"""A background loop that survives its own errors, wakes on demand and stops cleanly, written once.

Background work (the outbox relay, profile refresh, pruning) needs the same few things: run a
step now, then again every ``interval`` seconds or as soon as someone calls :meth:`notify`
(a commit that left work behind), log a failed round and carry on, and cancel promptly on stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from churn_shared.logging import get_logger

_log = get_logger(__name__)


class PeriodicLoop:
    """Runs ``step`` at start, then again ``interval_seconds`` after each round or at once when
    :meth:`notify` is called (0 disables the loop). A round that fails is logged, and the next
    one waits ``error_backoff_seconds`` more, so a broken database is not hammered."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[Any]],
        *,
        interval_seconds: float,
        error_backoff_seconds: float = 0.0,
    ) -> None:
        self._name = name
        self._step = step
        self._interval = interval_seconds
        self._backoff = error_backoff_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Run the next round now instead of at the end of the interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database or broker hiccup must not end the loop
                _log.exception("periodic_step_failed", loop=self._name)
                await asyncio.sleep(self._backoff)
            # ``asyncio.timeout``, not ``wait_for``: on Python 3.11 ``wait_for`` returns the
            # result of a wait that ends in the same turn as a cancellation and drops the
            # cancellation, so a notify racing a stop kept the loop (and the shutdown) going.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()

    def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
