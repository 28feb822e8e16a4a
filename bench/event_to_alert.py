"""Event → alert latency and sustained throughput, against the raw broker, in one run.

Starts the stack exactly as ``churn up`` does (or on MariaDB and Redis with ``--mysql`` and
``--cache``), registers a tenant, connects to the live feed, then for ``--seconds`` posts
batches of simulated events at ``--rate`` events/s, in ``--posts`` POSTs a second (one by
default). Each POST carries one "trigger" customer (a history that scores as high risk); its
latency is the time from the POST that carried it to the ``churn_alert`` on the socket. The
services' per-hop histograms (``/metrics``) are read after this phase and printed as the time
each hop took.

Then the throughput phase: ``--customers`` new customers with 10 events each, posted
5,000 per POST (each customer's events in one POST), timed until every customer's score is on
the feed. Finally the same broker is driven with raw aiokafka produce → consume, to put the
pipeline in proportion: its throughput for the same number of messages, and its send→receive
latency (one hop, p50/p99) at the same rate with the services' client settings.

    uv run python bench/event_to_alert.py --rate 1000 --seconds 20
    uv run python bench/event_to_alert.py --rate 1000 --seconds 20 --posts 10
    uv run python bench/event_to_alert.py --rate 1000 --seconds 20 --mysql \
      'mysql+aiomysql://churn_{service}:churn_{service}@127.0.0.1/churn_{service}' \
      --cache redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import socketio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from churn_cli.launcher import Stack, StackConfig
from churn_cli.simulator import CustomerSimulator, at_risk_story


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def register(http: httpx.AsyncClient) -> str:
    """A new tenant's access token (also set on ``http``)."""
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    await http.post(
        "/v1/auth/register",
        json={"tenant_name": "bench", "email": email, "password": "bench-password-123"},
    )
    tokens = (
        await http.post("/v1/auth/login", json={"email": email, "password": "bench-password-123"})
    ).json()
    http.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    return str(tokens["access_token"])


async def pipeline(gateway: str, rate: int, seconds: int, posts: int = 1) -> dict[str, float]:
    """``rate`` events a second in ``posts`` POSTs, each led by one trigger customer."""
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        token = await register(http)
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
            auth={"token": token},
            transports=["websocket"],
            socketio_path="/socket.io",
        )
        sim = CustomerSimulator(500, seed=3)
        posted = 0
        interval = 1.0 / posts
        started = time.perf_counter()
        for step in range(seconds * posts):
            tick = time.perf_counter()
            trigger = f"trigger-{step}"
            batch = at_risk_story(trigger) + sim.live_events(max(0, rate // posts - 20))
            sent_at[trigger] = time.perf_counter()
            response = await http.post("/v1/events", json={"events": batch})
            response.raise_for_status()
            posted += len(batch)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - tick)))
        ingest_elapsed = time.perf_counter() - started
        deadline = time.perf_counter() + 60
        while len(latencies) < seconds * posts and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
        await sio.disconnect()
    lat_ms = [v * 1000 for v in latencies.values()]
    return {
        "events_posted": posted,
        "ingest_events_per_s": posted / ingest_elapsed,
        "alerts_seen": len(lat_ms),
        "alerts_expected": seconds * posts,
        "p50_ms": statistics.median(lat_ms) if lat_ms else float("nan"),
        "p99_ms": pct(lat_ms, 0.99) if lat_ms else float("nan"),
        "score_updates_seen": scores,
    }


async def throughput(gateway: str, customers: int, per_post: int = 5_000) -> dict[str, float]:
    """``customers`` new customers with 10 events each (their signup two years ago, then
    orders, logins and e-mails), each customer's events in one POST of ``per_post`` events;
    events/s from the first POST until every customer's score is on the feed."""
    async with httpx.AsyncClient(base_url=gateway, timeout=120) as http:
        token = await register(http)
        scored: set[str] = set()
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("score_update")
        async def on_score(data: dict[str, object]) -> None:
            scored.add(str(data["customer_id"]))

        await sio.connect(
            gateway, auth={"token": token}, transports=["websocket"], socketio_path="/socket.io"
        )
        now = datetime.now(UTC)
        kinds = ("order_placed", "login", "login", "email_sent", "email_opened")
        events: list[dict[str, Any]] = []
        for c in range(customers):
            cid = f"tp-{c:05d}"
            signup = now - timedelta(days=730)
            events.append(_raw_event(cid, "signup", signup, {}))
            for k in range(9):
                kind = kinds[(c + k) % len(kinds)]
                props = {"amount": 25.0 + k} if kind == "order_placed" else {}
                events.append(_raw_event(cid, kind, signup + timedelta(days=60 * (k + 1)), props))
        started = time.perf_counter()
        for start in range(0, len(events), per_post):
            response = await http.post(
                "/v1/events", json={"events": events[start : start + per_post]}
            )
            response.raise_for_status()
        posted = time.perf_counter() - started
        deadline = time.perf_counter() + 300
        while len(scored) < customers and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        await sio.disconnect()
    return {
        "events": len(events),
        "scored": len(scored),
        "post_seconds": posted,
        "seconds": elapsed,
        "events_per_s": len(events) / elapsed,
    }


def _raw_event(cid: str, kind: str, at: datetime, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "customer_id": cid,
        "type": kind,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }


#: The hops of an event on its way to an alert, as the services' histograms name them:
#: (label, service, metric, series labels that must match).
HOPS: tuple[tuple[str, str, str, dict[str, str]], ...] = (
    (
        "POST /v1/events (ingest, customers)",
        "customers",
        "http_request_duration_seconds",
        {"route": "/v1/events", "method": "POST"},
    ),
    (
        "features: outbox → broker ack",
        "customers",
        "churn_outbox_publish_seconds",
        {"topic": "customer.features.v1"},
    ),
    (
        "features: made → prediction has them",
        "prediction",
        "churn_event_hop_seconds",
        {"topic": "customer.features.v1"},
    ),
    (
        "  of which broker",
        "prediction",
        "churn_broker_hop_seconds",
        {"topic": "customer.features.v1"},
    ),
    (
        "scoring batch (prediction)",
        "prediction",
        "churn_consumer_batch_seconds",
        {"consumer": "prediction-scorer"},
    ),
    (
        "scores: outbox → broker ack",
        "prediction",
        "churn_outbox_publish_seconds",
        {"topic": "churn.scores.v1"},
    ),
    (
        "scores: made → alerts has them",
        "alerts",
        "churn_event_hop_seconds",
        {"topic": "churn.scores.v1"},
    ),
    ("  of which broker", "alerts", "churn_broker_hop_seconds", {"topic": "churn.scores.v1"}),
    (
        "alerting batch (alerts)",
        "alerts",
        "churn_consumer_batch_seconds",
        {"consumer": "alerts-scores"},
    ),
    (
        "alerts: outbox → broker ack",
        "alerts",
        "churn_outbox_publish_seconds",
        {"topic": "churn.alerts.v1"},
    ),
    (
        "alerts: made → on the feed (gateway)",
        "gateway",
        "churn_event_hop_seconds",
        {"topic": "churn.alerts.v1"},
    ),
)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time (user + system, all threads) each component has used so far (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def scrape(urls: dict[str, str]) -> dict[str, str]:
    return {name: httpx.get(f"{url}/metrics", timeout=10).text for name, url in urls.items()}


def _buckets(text: str, metric: str, match: dict[str, str]) -> dict[float, float]:
    """The cumulative bucket counts of the series of ``metric`` whose labels include
    ``match``, summed."""
    out: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for sample in family.samples:
            if sample.name != f"{metric}_bucket":
                continue
            if any(sample.labels.get(k) != v for k, v in match.items()):
                continue
            le = float(sample.labels["le"])
            out[le] = out.get(le, 0.0) + sample.value
    return out


def _quantile(buckets: dict[float, float], q: float) -> float:
    """``q`` of a histogram by linear interpolation within its bucket (as PromQL does)."""
    edges = sorted(buckets)
    total = buckets[edges[-1]]
    rank = q * total
    lower, below = 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            inside = buckets[edge] - below
            return lower + (edge - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = edge, buckets[edge]
    return lower


def hop_table(before: dict[str, str], after: dict[str, str]) -> list[str]:
    lines = []
    for label, service, metric, match in HOPS:
        start = _buckets(before[service], metric, match)
        end = _buckets(after[service], metric, match)
        diff = {le: n - start.get(le, 0.0) for le, n in end.items()}
        count = diff.get(float("inf"), 0.0)
        if not count:
            lines.append(f"  {label:<40} (no samples)")
            continue
        lines.append(
            f"  {label:<40} n={count:>6.0f}  p50 {_quantile(diff, 0.5) * 1000:7.1f} ms"
            f"  p99 {_quantile(diff, 0.99) * 1000:7.1f} ms"
        )
    return lines


async def raw_latency(bootstrap: str, rate: int, seconds: int) -> dict[str, float]:
    """Produce ``rate`` 300-byte messages/s for ``seconds`` with the broker's quickest client
    settings (``linger_ms=5`` as the services, ``fetch_max_wait_ms=10``, below the services'
    50) while a consumer reads them; the latency
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=500, help="events per second")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument(
        "--posts", type=int, default=1, help="POSTs a second, each with one trigger customer"
    )
    parser.add_argument(
        "--customers", type=int, default=2_000, help="new customers in the throughput phase"
    )
    parser.add_argument("--mysql", help="a mysql+aiomysql URL template with {service}")
    parser.add_argument("--cache", default="memory://", help="e.g. redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = StackConfig(
            data_dir=Path(tmp),
            mysql_url_template=args.mysql,
            cache_url=args.cache,
            # The first start trains the default model: minutes on a busy 2-core machine.
            ready_timeout=600,
        )
        with Stack(config) as stack:
            urls = {name: stack.url(name) for name in ("customers", "prediction", "alerts")}
            urls["gateway"] = stack.gateway_url
            before, cpu_before, wall = scrape(urls), cpu_seconds(stack.pids()), time.perf_counter()
            result = asyncio.run(pipeline(stack.gateway_url, args.rate, args.seconds, args.posts))
            hops = hop_table(before, scrape(urls))
            cpu_after, wall = cpu_seconds(stack.pids()), time.perf_counter() - wall
            spent = {n: cpu_after[n] - cpu_before.get(n, 0.0) for n in cpu_after}
            flood = asyncio.run(throughput(stack.gateway_url, args.customers))
            raw = asyncio.run(raw_broker(stack.kafka_bootstrap, int(flood["events"])))
            hop = asyncio.run(raw_latency(stack.kafka_bootstrap, args.rate, min(args.seconds, 10)))
    backend = "MariaDB + Redis" if args.mysql else "SQLite + in-process cache"
    print(f"stack                       {backend}, embedded broker")
    print(
        f"target rate                 {args.rate} events/s for {args.seconds} s "
        f"in {args.posts} POST(s) a second"
    )
    print(f"events posted               {result['events_posted']:.0f}")
    print(f"sustained ingest            {result['ingest_events_per_s']:.0f} events/s")
    print(
        f"alerts seen / expected      {result['alerts_seen']:.0f} / {result['alerts_expected']:.0f}"
    )
    print(
        f"event→alert latency         p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms"
    )
    print(f"score updates on the feed   {result['score_updates_seen']:.0f}")
    print("per hop during that phase (the services' /metrics):")
    print("\n".join(hops))
    # CPU time per event says what the pipeline costs even on a machine that others share.
    per_k = 1000 / result["events_posted"]
    print(
        "CPU s per 1000 events       "
        + ", ".join(f"{n} {c * per_k:.2f}" for n, c in spent.items() if c > 0)
        + f"; total {sum(spent.values()) * per_k:.2f} "
        f"({sum(spent.values()) / wall:.2f} of {os.cpu_count()} cores for {wall:.0f} s)"
    )
    print(
        f"raw broker send→receive     p50 {hop['p50_ms']:.0f} ms, p99 {hop['p99_ms']:.0f} ms "
        f"at {args.rate} msg/s"
    )
    print(f"event→alert p99 / raw p99   {result['p99_ms'] / hop['p99_ms']:.1f} (goal <= 7)")
    print(
        f"throughput                  {flood['events']:.0f} events for {args.customers} new "
        f"customers: posted in {flood['post_seconds']:.1f} s, {flood['scored']:.0f} scored "
        f"after {flood['seconds']:.1f} s = {flood['events_per_s']:.0f} events/s end to end"
    )
    print(f"raw broker produce→consume  {raw:.0f} msg/s ({flood['events']:.0f} messages)")
    print(f"end to end / raw broker     {flood['events_per_s'] / raw:.3f} (goal >= 0.3)")


if __name__ == "__main__":
    main()
