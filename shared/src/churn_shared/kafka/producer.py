"""Publishing envelopes, and making sure topics exist."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from churn_shared.contracts import Topics
from churn_shared.kafka.envelope import Envelope
from churn_shared.logging import get_logger, request_id_var

_log = get_logger(__name__)
_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], partitions: int = 3, *, with_dlq: bool = True
) -> None:
    """Create ``topics`` (and their ``.dlq`` topics) if they do not exist yet."""
    names = list(dict.fromkeys(topics))
    if with_dlq:
        names += [Topics.dead_letter(t) for t in names if not t.endswith(".dlq")]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="churn-admin")
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(30),
        wait=wait_exponential(max=2),
        reraise=True,
        retry=retry_if_exception_type(Exception),
    ):
        with attempt:
            await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
            )
            for topic, code, message in response.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"cannot create topic {topic}: {code} {message}")
    finally:
        await admin.close()


class EventPublisher:
    """A started aiokafka producer that sends envelopes keyed by customer id."""

    def __init__(self, bootstrap_servers: str, *, client_id: str, linger_ms: int = 5) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            linger_ms=linger_ms,
            acks="all",
            enable_idempotence=False,
            max_batch_size=1024 * 1024,
            max_request_size=4 * 1024 * 1024,
        )

    async def start(self) -> None:
        async for attempt in AsyncRetrying(
            stop=stop_after_delay(30), wait=wait_exponential(max=2), reraise=True
        ):
            with attempt:
                await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: str | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[object]:
        """Queue one message; the returned future resolves when the broker acknowledged it."""
        fut: asyncio.Future[object] = await self._producer.send(
            topic, value=value, key=key.encode() if key else None, headers=list(headers)
        )
        return fut

    async def publish(
        self, topic: str, envelopes: Sequence[Envelope], *, request_id: str | None = None
    ) -> None:
        """Send envelopes and wait until all are acknowledged."""
        rid = request_id or request_id_var.get()
        headers = [("x-request-id", rid.encode())] if rid else []
        futures = [
            await self.send_raw(topic, env.to_bytes(), key=env.key, headers=headers)
            for env in envelopes
        ]
        if futures:
            await asyncio.gather(*futures)
