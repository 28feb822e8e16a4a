"""Rate-limit counters behind a timeout, a circuit breaker and an in-process fallback."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage

from churn_shared.ratelimit import (
    CircuitBreaker,
    CounterStoreSettings,
    ResilientStorage,
    WindowCounters,
    counter_storage,
)

THREE_PER_MINUTE = parse("3/minute")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SickStorage(MemoryStorage):
    """An in-memory "Redis" that can be made to hang or refuse, counting the calls it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "up"
        self.calls = 0

    async def _sick(self) -> None:
        self.calls += 1
        if self.mode == "hung":
            await asyncio.sleep(30)
        if self.mode == "down":
            raise ConnectionError("connection refused")

    async def acquire_sliding_window_entry(
        self, key: str, limit: int, expiry: int, amount: int = 1
    ) -> bool:
        await self._sick()
        return await super().acquire_sliding_window_entry(key, limit, expiry, amount)

    async def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        await self._sick()
        return await super().get_sliding_window(key, expiry)


def resilient(
    primary: SickStorage, clock: FakeClock | None = None, *, timeout: float = 0.05
) -> ResilientStorage:
    breaker = CircuitBreaker(failures_to_open=3, cooldown_seconds=5.0, clock=clock or FakeClock())
    return ResilientStorage(primary, timeout_seconds=timeout, breaker=breaker)


class TestCircuitBreaker:
    def test_opens_after_consecutive_failures_only(self) -> None:
        breaker = CircuitBreaker(failures_to_open=3, cooldown_seconds=5, clock=FakeClock())
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
        assert [breaker.record_failure() for _ in range(3)] == [False, False, True]
        assert breaker.state == "open"
        assert breaker.allow() is False

    def test_lets_one_probe_through_after_the_cooldown(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(failures_to_open=1, cooldown_seconds=5, clock=clock)
        breaker.record_failure()
        clock.now += 4.9
        assert breaker.allow() is False
        clock.now += 0.2
        assert breaker.allow() is True
        assert breaker.state == "half-open"
        assert breaker.allow() is False  # one probe at a time

    def test_a_failed_probe_opens_it_for_another_cooldown(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(failures_to_open=3, cooldown_seconds=5, clock=clock)
        for _ in range(3):
            breaker.record_failure()
        clock.now += 5
        assert breaker.allow() is True
        assert breaker.record_failure() is True
        assert breaker.state == "open"
        clock.now += 4
        assert breaker.allow() is False

    def test_a_successful_probe_closes_it(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(failures_to_open=1, cooldown_seconds=5, clock=clock)
        breaker.record_failure()
        clock.now += 5
        assert breaker.allow() is True
        assert breaker.record_success() is True
        assert breaker.state == "closed"
        assert breaker.allow() is True

    def test_a_cancelled_probe_lets_the_next_call_probe(self) -> None:
        clock = FakeClock()
        breaker = CircuitBreaker(failures_to_open=1, cooldown_seconds=5, clock=clock)
        breaker.record_failure()
        clock.now += 5
        assert breaker.allow() is True
        breaker.abandon()
        assert breaker.allow() is True


class TestResilientStorage:
    async def test_a_hung_primary_costs_one_timeout_per_call_until_the_breaker_opens(
        self,
    ) -> None:
        primary = SickStorage()
        primary.mode = "hung"
        counters = WindowCounters(resilient(primary), "test")

        started = time.perf_counter()
        answers = [await counters.hit(THREE_PER_MINUTE, "address", "a") for _ in range(4)]
        elapsed = time.perf_counter() - started

        assert answers[:3] == [None, None, None]
        assert answers[3] is not None  # the fallback still limits
        assert 1 <= answers[3] <= 60
        assert primary.calls == 3  # then the breaker skipped the hung primary
        assert elapsed < 1.0

    async def test_a_dead_primary_falls_back_to_in_process_limits(self) -> None:
        primary = SickStorage()
        primary.mode = "down"
        storage = resilient(primary)
        counters = WindowCounters(storage, "test")

        answers = [await counters.hit(THREE_PER_MINUTE, "address", "a") for _ in range(4)]

        assert answers[:3] == [None, None, None]
        assert answers[3] is not None
        assert storage.degraded is True

    async def test_the_breaker_probes_after_the_cooldown_and_goes_back_to_the_primary(
        self,
    ) -> None:
        clock = FakeClock()
        primary = SickStorage()
        storage = resilient(primary, clock)
        counters = WindowCounters(storage, "test")
        await counters.hit(THREE_PER_MINUTE, "address", "a")  # counted by the primary

        primary.mode = "down"
        for _ in range(3):
            await counters.hit(THREE_PER_MINUTE, "address", "b")
        calls_when_opened = primary.calls
        await counters.hit(THREE_PER_MINUTE, "address", "b")
        assert primary.calls == calls_when_opened  # open: the primary is not asked

        primary.mode = "up"
        clock.now += 5
        await counters.hit(THREE_PER_MINUTE, "address", "a")  # the probe
        assert storage.degraded is False
        assert primary.calls == calls_when_opened + 1
        # The primary kept its own count: two hits of "a" there.
        assert await WindowCounters(primary, "test").hit(THREE_PER_MINUTE, "address", "a") is None
        assert await WindowCounters(primary, "test").hit(THREE_PER_MINUTE, "address", "a")

    async def test_cancelling_a_call_does_not_leave_the_breaker_stuck(self) -> None:
        clock = FakeClock()
        primary = SickStorage()
        primary.mode = "down"
        storage = resilient(primary, clock, timeout=5.0)
        counters = WindowCounters(storage, "test")
        for _ in range(3):
            await counters.hit(THREE_PER_MINUTE, "address", "a")
        clock.now += 5
        primary.mode = "hung"
        probe = asyncio.create_task(counters.hit(THREE_PER_MINUTE, "address", "a"))
        await asyncio.sleep(0.05)
        probe.cancel()
        with suppress(asyncio.CancelledError):
            await probe
        primary.mode = "up"
        await counters.hit(THREE_PER_MINUTE, "address", "a")
        assert storage.degraded is False


def test_memory_url_needs_no_breaker() -> None:
    assert isinstance(counter_storage("memory://", CounterStoreSettings(), name="t"), MemoryStorage)


def test_unsupported_url_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        counter_storage("memcached://x:1", CounterStoreSettings(), name="t")


@asynccontextmanager
async def switchable_proxy(target_host: str, target_port: int) -> AsyncIterator[Any]:
    """A loopback TCP proxy to Redis that can be switched off (connections refused) and on."""

    class Proxy:
        def __init__(self) -> None:
            self.port = 0
            self.server: asyncio.Server | None = None
            self.pipes: set[asyncio.StreamWriter] = set()

        async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
            self.pipes.update({writer, up_writer})
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

        async def on(self) -> None:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
            self.port = self.server.sockets[0].getsockname()[1]

        async def off(self) -> None:
            assert self.server is not None
            self.server.close()
            for writer in self.pipes:
                writer.close()
            self.pipes.clear()
            await self.server.wait_closed()

    proxy = Proxy()
    await proxy.on()
    try:
        yield proxy
    finally:
        with suppress(Exception):
            await proxy.off()


async def test_with_real_redis_limits_survive_an_outage_and_the_breaker_recovers(
    redis_url: str,
) -> None:
    from urllib.parse import urlparse

    target = urlparse(redis_url)
    prefix = f"test-{uuid.uuid4().hex}"
    options = CounterStoreSettings(timeout_seconds=0.2, failures_to_open=2, cooldown_seconds=0.3)
    async with switchable_proxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
        storage = counter_storage(
            f"redis://127.0.0.1:{proxy.port}{target.path}", options, name="test"
        )
        assert isinstance(storage, ResilientStorage)
        counters = WindowCounters(storage, prefix)
        redis = RedisStorage(f"async+{redis_url}", implementation="redispy")
        direct = WindowCounters(redis, prefix)
        try:
            assert await counters.hit(THREE_PER_MINUTE, "address", "a") is None
            assert await direct.exhausted(THREE_PER_MINUTE, "address", "a") is None
            assert storage.degraded is False

            await proxy.off()  # Redis is gone: the in-process fallback counts from zero
            outage = [await counters.hit(THREE_PER_MINUTE, "address", "a") for _ in range(4)]
            assert outage[:3] == [None, None, None]
            assert outage[3] is not None
            assert storage.degraded is True

            await proxy.on()  # Redis is back: after the cooldown one probe closes the breaker
            await asyncio.sleep(0.35)
            assert await counters.hit(THREE_PER_MINUTE, "address", "a") is None
            assert storage.degraded is False
            assert await counters.hit(THREE_PER_MINUTE, "address", "a") is None
            # Both hits after the outage landed in Redis next to the one before it.
            assert await direct.exhausted(THREE_PER_MINUTE, "address", "a") is not None
        finally:
            await storage.close()
            await redis.bridge.storage.aclose()


@pytest.fixture(params=["memory", "redis"])
async def window_storage(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryStorage()
        return
    redis_url: str = request.getfixturevalue("redis_url")
    storage = RedisStorage(f"async+{redis_url}", implementation="redispy")
    try:
        yield storage
    finally:
        await storage.bridge.storage.aclose()


async def test_recorded_occurrences_past_the_limit_still_count_after_the_window_turns(
    window_storage: Any,
) -> None:
    """Six failures against "4 per 2 seconds", then the 2-second window turns over: the
    sliding count (six, weighted by the part of the old window still inside) stays above the
    limit. A count capped at four would weigh about 3.8 and let the next attempt through."""
    four_per_two_seconds = parse("4/2 seconds")
    counters = WindowCounters(window_storage, f"test-{uuid.uuid4().hex}")
    await asyncio.sleep(2 - time.time() % 2 + 0.05)  # just after a window starts
    for _ in range(6):
        await counters.record(four_per_two_seconds, "account", "owner@example.com")
    assert await counters.exhausted(four_per_two_seconds, "account", "owner@example.com")
    await asyncio.sleep(2 - time.time() % 2 + 0.1)  # just after the next one starts

    assert await counters.exhausted(four_per_two_seconds, "account", "owner@example.com")
    assert await counters.exhausted(four_per_two_seconds, "account", "someone@example.com") is None
