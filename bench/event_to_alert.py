"""Event → alert latency and sustained ingest on the embedded stack, against the raw broker.

Starts the stack exactly as ``churn up`` does, registers a tenant, connects to the live feed,
then for ``--seconds`` posts batches of simulated events at ``--rate`` events/s. Each second one
"trigger" customer (a history that scores as high risk) is included; its latency is the time from
the POST that carried it to the ``churn_alert`` on the socket. Finally the same broker is driven
with raw aiokafka produce → consume, to put the pipeline in proportion: its throughput, and its
send→receive latency (one hop, p50/p99) at the same rate with the services' client settings.

    uv run python bench/event_to_alert.py --rate 1000 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import socketio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from churn_cli.launcher import Stack, StackConfig
from churn_cli.simulator import CustomerSimulator, at_risk_story


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def pipeline(gateway: str, rate: int, seconds: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
        await http.post(
            "/v1/auth/register",
            json={"tenant_name": "bench", "email": email, "password": "bench-password-123"},
        )
        tokens = (
            await http.post(
                "/v1/auth/login", json={"email": email, "password": "bench-password-123"}
            )
        ).json()
        http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        sent_at: dict[str, float] = {}
        latencies: dict[str, float] = {}
        scores = 0
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("churn_alert")
        async def on_alert(data: dict[str, object]) -> None:
            cid = str(data["customer_id"])
            if cid in sent_at and cid not in latencies:
                latencies[cid] = time.perf_counter() - sent_at[cid]

        @sio.on("score_update")
        async def on_score(data: dict[str, object]) -> None:
            nonlocal scores
            scores += 1

        await sio.connect(
            gateway,
            auth={"token": tokens["access_token"]},
            transports=["websocket"],
            socketio_path="/socket.io",
        )
        sim = CustomerSimulator(500, seed=3)
        posted = 0
        started = time.perf_counter()
        for second in range(seconds):
            tick = time.perf_counter()
            trigger = f"trigger-{second}"
            batch = at_risk_story(trigger) + sim.live_events(max(0, rate - 20))
            sent_at[trigger] = time.perf_counter()
            response = await http.post("/v1/events", json={"events": batch})
            response.raise_for_status()
            posted += len(batch)
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - tick)))
        ingest_elapsed = time.perf_counter() - started
        deadline = time.perf_counter() + 60
        while len(latencies) < seconds and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        await sio.disconnect()
    lat_ms = [v * 1000 for v in latencies.values()]
    return {
        "events_posted": posted,
        "ingest_events_per_s": posted / ingest_elapsed,
        "alerts_seen": len(lat_ms),
        "alerts_expected": seconds,
        "p50_ms": statistics.median(lat_ms) if lat_ms else float("nan"),
        "p99_ms": pct(lat_ms, 0.99) if lat_ms else float("nan"),
        "score_updates_seen": scores,
    }


async def raw_latency(bootstrap: str, rate: int, seconds: int) -> dict[str, float]:
    """Produce ``rate`` 300-byte messages/s for ``seconds`` with the services' client settings
    (``linger_ms=5``, ``fetch_max_wait_ms=10``) while a consumer reads them; the latency
    from ``send`` to ``getmany`` of each message, in ms. One broker hop: the pipeline from
    event to alert takes three (features, scores, alerts) plus the database work between."""
    topic = f"bench-lat-{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    latencies: list[float] = []
    expected = rate * seconds
    padding = b"x" * 280

    async def consume() -> None:
        while len(latencies) < expected:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if record.value != b"warm-up":
                        latencies.append((now - float(record.value[:20])) * 1000)

    reader = asyncio.create_task(consume())
    tick = 0.01  # send in 10 ms slices, as a steady stream
    started = time.perf_counter()
    for step in range(int(seconds / tick)):
        for i in range(rate // 100):
            stamp = f"{time.perf_counter():<20.6f}".encode()
            await producer.send(topic, stamp + padding, key=str((step + i) % 100).encode())
        await asyncio.sleep(max(0.0, started + (step + 1) * tick - time.perf_counter()))
    await asyncio.wait_for(reader, 60)
    await consumer.stop()
    await producer.stop()
    return {"p50_ms": statistics.median(latencies), "p99_ms": pct(latencies, 0.99)}


async def raw_broker(bootstrap: str, n: int = 20_000) -> float:
    """Produce then consume ``n`` 300-byte messages; messages/s end to end."""
    topic = f"bench-raw-{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1024 * 1024
    )
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=topic,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    payload = b"x" * 300
    started = time.perf_counter()
    futures = [await producer.send(topic, payload, key=str(i % 100).encode()) for i in range(n)]
    await asyncio.gather(*futures)
    seen = 0
    while seen < n + 1:
        batch = await consumer.getmany(timeout_ms=500, max_records=5000)
        seen += sum(len(v) for v in batch.values())
    elapsed = time.perf_counter() - started
    await consumer.stop()
    await producer.stop()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=500, help="events per second")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Stack(StackConfig(data_dir=Path(tmp))) as stack:
        result = asyncio.run(pipeline(stack.gateway_url, args.rate, args.seconds))
        raw = asyncio.run(raw_broker(stack.kafka_bootstrap))
        hop = asyncio.run(raw_latency(stack.kafka_bootstrap, args.rate, min(args.seconds, 10)))
    print(f"target rate                 {args.rate} events/s for {args.seconds} s")
    print(f"events posted               {result['events_posted']:.0f}")
    print(f"sustained ingest            {result['ingest_events_per_s']:.0f} events/s")
    print(
        f"alerts seen / expected      {result['alerts_seen']:.0f} / {result['alerts_expected']:.0f}"
    )
    print(
        f"event→alert latency         p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms"
    )
    print(f"score updates on the feed   {result['score_updates_seen']:.0f}")
    print(f"raw broker produce→consume  {raw:.0f} msg/s")
    print(f"pipeline / raw broker       {result['ingest_events_per_s'] / raw:.3f}")
    print(
        f"raw broker send→receive     p50 {hop['p50_ms']:.0f} ms, p99 {hop['p99_ms']:.0f} ms "
        f"at {args.rate} msg/s"
    )
    print(f"event→alert p99 / raw p99   {result['p99_ms'] / hop['p99_ms']:.1f} (goal <= 7)")


if __name__ == "__main__":
    main()
