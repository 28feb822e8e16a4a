import asyncio

from churn_shared.loops import PeriodicLoop


async def test_a_failing_round_is_logged_and_the_loop_goes_on():
    rounds: list[int] = []

    async def step() -> None:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("database hiccup")

    loop = PeriodicLoop("test", step, interval_seconds=0.01)
    loop.start()
    for _ in range(200):
        if len(rounds) >= 3:
            break
        await asyncio.sleep(0.01)
    await loop.stop()
    assert len(rounds) >= 3
    settled = len(rounds)
    await asyncio.sleep(0.05)
    assert len(rounds) == settled  # stopped means stopped


async def test_interval_zero_disables_the_loop():
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)

    loop = PeriodicLoop("off", step, interval_seconds=0)
    loop.start()
    await asyncio.sleep(0.05)
    await loop.stop()
    assert calls == []


async def test_notify_runs_the_next_round_at_once_instead_of_after_the_interval():
    rounds: list[int] = []

    async def step() -> None:
        rounds.append(len(rounds))

    loop = PeriodicLoop("woken", step, interval_seconds=3600)
    loop.start()
    for _ in range(100):
        if rounds:
            break
        await asyncio.sleep(0.01)
    assert rounds == [0]  # the first round runs at start
    loop.notify()
    for _ in range(100):
        if len(rounds) == 2:
            break
        await asyncio.sleep(0.01)
    await loop.stop()
    assert rounds == [0, 1]


async def test_a_stop_that_coincides_with_a_notify_still_stops_the_loop():
    rounds: list[int] = []

    async def step() -> None:
        rounds.append(len(rounds))

    loop = PeriodicLoop("racing", step, interval_seconds=3600)
    loop.start()
    for _ in range(100):
        if rounds:
            break
        await asyncio.sleep(0.01)
    assert rounds == [0]
    # A wake-up and the cancellation land in the same turn of the event loop (an import
    # finishing as the service shuts down): the cancellation must not be lost to the wake-up.
    loop.notify()
    stopping = asyncio.create_task(loop.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "the loop went on after its stop"
