"""Rate-limit counters that a sick Redis cannot take down, written once for every process.

Counters live in-process (``memory://``) or in Redis (``redis://``, ``rediss://``) so that
replicas share them. Redis is optional for correctness, so it must never make a request slow or
a replica unready:

* every Redis call is bounded by a short timeout (tens of milliseconds);
* a :class:`CircuitBreaker` opens after a few consecutive failures, and while it is open every
  call goes straight to an in-process fallback (``limits``' ``MemoryStorage``); after a
  cool-down one call probes Redis again (half-open) and closes the breaker when it answers;
* while Redis is unavailable the limits keep applying, counted per process from zero.

:class:`WindowCounters` puts the ``limits`` strategies and a few plain counters (``increment``,
``hold``) on top of one storage and answers in seconds to wait, so each service raises its own
429 error.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar, cast
from urllib.parse import quote

from limits import RateLimitItem
from limits.aio.storage import (
    MemoryStorage,
    MovingWindowSupport,
    RedisStorage,
    SlidingWindowCounterSupport,
    Storage,
)
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from pydantic import BaseModel, Field

from churn_shared.logging import get_logger

_log = get_logger(__name__)

T = TypeVar("T")
#: The limit :meth:`WindowCounters.record` counts against: never reached, so nothing is refused.
_UNCAPPED = 2**31 - 1
BreakerState = Literal["closed", "open", "half-open"]


class CounterStoreSettings(BaseModel):
    """How long a Redis call may take, and when to stop asking Redis for a while.

    Nested in a service's settings as ``rate_limit_storage`` (environment, e.g.
    ``CHURN_GATEWAY_RATE_LIMIT_STORAGE__TIMEOUT_SECONDS=0.05``).
    """

    #: Upper bound of one Redis call; past it the call counts as failed and the in-process
    #: fallback answers.
    timeout_seconds: float = Field(default=0.05, gt=0, le=5)
    #: Consecutive failed calls that open the breaker (calls then skip Redis entirely).
    failures_to_open: int = Field(default=3, ge=1)
    #: How long the breaker stays open before one call probes Redis again.
    cooldown_seconds: float = Field(default=5.0, gt=0)


class CircuitBreaker:
    """Closed → open after ``failures_to_open`` consecutive failures; half-open after a cool-down.

    In the half-open state exactly one caller (the probe) is let through; its success closes the
    breaker, its failure opens it for another cool-down.
    """

    def __init__(
        self,
        *,
        failures_to_open: int,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures_to_open = failures_to_open
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """Whether this call may go to the guarded resource (the probe, when half-open)."""
        if self._state == "closed":
            return True
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown_seconds:
            self._state = "half-open"
            return True
        return False

    def record_success(self) -> bool:
        """Close the breaker; ``True`` when it was not closed (the resource is back)."""
        recovered = self._state != "closed"
        self._state = "closed"
        self._failures = 0
        return recovered

    def record_failure(self) -> bool:
        """Count a failure; ``True`` when this failure opened the breaker."""
        self._failures += 1
        if self._state == "half-open" or (
            self._state == "closed" and self._failures >= self.failures_to_open
        ):
            self._state = "open"
            self._opened_at = self._clock()
            return True
        return False

    def abandon(self) -> None:
        """A call was cancelled before it could tell; a half-open breaker lets the next probe in."""
        if self._state == "half-open":
            self._state = "open"
            self._opened_at = self._clock() - self.cooldown_seconds


class ResilientStorage(Storage, MovingWindowSupport, SlidingWindowCounterSupport):
    """A ``limits`` storage that asks ``primary`` (Redis) under a timeout and a circuit breaker,
    and answers from ``fallback`` (in-process) whenever Redis is slow, down or skipped."""

    STORAGE_SCHEME = None

    def __init__(
        self,
        primary: Storage,
        *,
        timeout_seconds: float,
        breaker: CircuitBreaker,
        fallback: MemoryStorage | None = None,
        name: str = "rate_limit_storage",
    ) -> None:
        super().__init__()
        self.primary = primary
        self.fallback = fallback or MemoryStorage()
        self.timeout_seconds = timeout_seconds
        self.breaker = breaker
        self.name = name

    @property
    def degraded(self) -> bool:
        """``True`` while the answers come from the in-process fallback."""
        return self.breaker.state != "closed"

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ()  # never raises a storage error: the fallback answers instead

    async def _call(self, operation: Callable[[Storage], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            return await operation(self.fallback)
        try:
            async with asyncio.timeout(self.timeout_seconds):
                result = await operation(self.primary)
        except asyncio.CancelledError:
            self.breaker.abandon()
            raise
        except Exception as exc:  # TimeoutError, ConnectionError, redis errors, ...
            if self.breaker.record_failure():
                _log.warning(
                    "counter_store_unavailable",
                    store=self.name,
                    error=repr(exc),
                    fallback="in-process",
                    retry_in_seconds=self.breaker.cooldown_seconds,
                )
            return await operation(self.fallback)
        if self.breaker.record_success():
            _log.info("counter_store_recovered", store=self.name)
        return result

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._call(lambda storage: storage.incr(key, expiry, amount))

    async def get(self, key: str) -> int:
        return await self._call(lambda storage: storage.get(key))

    async def get_expiry(self, key: str) -> float:
        return await self._call(lambda storage: storage.get_expiry(key))

    async def check(self) -> bool:
        """Whether Redis itself answers now (bounded by the timeout; the breaker is untouched)."""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                return bool(await self.primary.check())
        except Exception:
            return False

    async def reset(self) -> int | None:
        return await self._call(lambda storage: storage.reset())

    async def clear(self, key: str) -> None:
        await self._call(lambda storage: storage.clear(key))

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        return await self._call(
            lambda storage: _moving(storage).acquire_entry(key, limit, expiry, amount)
        )

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return await self._call(
            lambda storage: _moving(storage).get_moving_window(key, limit, expiry)
        )

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        return await self._call(
            lambda storage: _sliding(storage).acquire_sliding_window_entry(
                key, limit, expiry, amount
            )
        )

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        return await self._call(lambda storage: _sliding(storage).get_sliding_window(key, expiry))

    async def clear_sliding_window(self, key: str, expiry: int) -> None:
        await self._call(lambda storage: _sliding(storage).clear_sliding_window(key, expiry))

    async def close(self) -> None:
        """Close Redis' connection pool (best effort)."""
        client = getattr(getattr(self.primary, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is None:
            return
        try:
            async with asyncio.timeout(1.0):
                await close()
        except Exception as exc:
            _log.warning("counter_store_close_failed", store=self.name, error=repr(exc))


def _moving(storage: Storage) -> MovingWindowSupport:
    assert isinstance(storage, MovingWindowSupport)
    return storage


def _sliding(storage: Storage) -> SlidingWindowCounterSupport:
    assert isinstance(storage, SlidingWindowCounterSupport)
    return storage


def counter_storage(url: str, options: CounterStoreSettings, *, name: str) -> Storage:
    """``memory://`` → in-process counters; ``redis://``/``rediss://`` → Redis behind a timeout,
    a circuit breaker and an in-process fallback."""
    if url.startswith("memory://"):
        return MemoryStorage()
    if url.startswith(("redis://", "rediss://")):
        redis = RedisStorage(
            f"async+{url}",
            implementation="redispy",
            # A second bound inside the client; the timeout around each call is the one that counts.
            socket_connect_timeout=options.timeout_seconds,
            socket_timeout=options.timeout_seconds,
        )
        return ResilientStorage(
            redis,
            timeout_seconds=options.timeout_seconds,
            breaker=CircuitBreaker(
                failures_to_open=options.failures_to_open,
                cooldown_seconds=options.cooldown_seconds,
            ),
            name=name,
        )
    raise ValueError(f"unsupported cache URL for rate limits: {url!r}")


def _key_part(identifier: str) -> str:
    """Identifiers are joined with ``/`` in keys; escape it so two ids cannot run together."""
    return quote(identifier, safe="@.:-_+")


class WindowCounters:
    """Sliding-window limits and plain counters under one key prefix, over one storage.

    Methods that can refuse return ``None`` when allowed, or the whole seconds to wait (≥ 1).
    """

    def __init__(self, storage: Storage, prefix: str) -> None:
        self.storage = storage
        self.prefix = prefix
        self._sliding = SlidingWindowCounterRateLimiter(storage)

    def _ids(self, identifiers: tuple[str, ...]) -> tuple[str, ...]:
        return (self.prefix, *(_key_part(i) for i in identifiers))

    def _key(self, identifiers: tuple[str, ...]) -> str:
        return "/".join(self._ids(identifiers))

    async def hit(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Count one hit; the wait when the limit was already used up (the hit is refused)."""
        if await self._sliding.hit(item, *self._ids(identifiers)):
            return None
        return await self._wait(item, identifiers)

    async def exhausted(self, item: RateLimitItem, *identifiers: str) -> int | None:
        """Without counting: the wait when one more hit would be refused."""
        if await self._sliding.test(item, *self._ids(identifiers)):
            return None
        return await self._wait(item, identifiers)

    async def record(self, item: RateLimitItem, *identifiers: str) -> None:
        """Count one occurrence against ``item`` (checked later with :meth:`exhausted`).

        Every occurrence counts, also past the limit. A hit refused at the limit is not counted,
        so a count capped at the limit would fall below it the moment a window turns over (the
        previous window is weighted by the part of it still inside the sliding window) and
        :meth:`exhausted` would let one through although the occurrences went on.
        """
        storage = cast(SlidingWindowCounterSupport, self.storage)
        await storage.acquire_sliding_window_entry(
            item.key_for(*self._ids(identifiers)), _UNCAPPED, item.get_expiry()
        )

    async def _wait(self, item: RateLimitItem, identifiers: tuple[str, ...]) -> int:
        stats = await self._sliding.get_window_stats(item, *self._ids(identifiers))
        return _whole_seconds(stats.reset_time - time.time(), default=item.get_expiry())

    async def increment(self, *identifiers: str, remember_seconds: int) -> int:
        """Add one to a plain counter that is forgotten ``remember_seconds`` after it started."""
        return await self.storage.incr(self._key(identifiers), max(1, remember_seconds))

    async def forget(self, *identifiers: str) -> None:
        await self.storage.clear(self._key(identifiers))

    async def hold(self, seconds: int, *identifiers: str) -> None:
        """Set a flag that expires after ``seconds`` (a lock), replacing an earlier one."""
        key = self._key(identifiers)
        await self.storage.clear(key)
        await self.storage.incr(key, max(1, seconds))

    async def held_for(self, *identifiers: str) -> int | None:
        """The whole seconds left on a flag set by :meth:`hold`, or ``None`` when it is not set."""
        key = self._key(identifiers)
        if await self.storage.get(key) <= 0:
            return None
        return _whole_seconds(await self.storage.get_expiry(key) - time.time(), default=1)


def _whole_seconds(seconds: float, *, default: int) -> int:
    if not math.isfinite(seconds):
        return max(1, default)
    return max(1, math.ceil(seconds))
