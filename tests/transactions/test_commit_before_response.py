"""A 2xx means committed, in every service.

Each case takes one write endpoint per service and forces the database to fail at ``COMMIT``
(a listener on the engine raises). Before the unit of work committed inside the request, the
response had already gone out as 2xx when the commit failed. Now the client must see a 5xx
problem and the write must be absent; a lock conflict at commit is retried and, if it keeps
happening, answered 503 with ``Retry-After``; and after a successful write, an immediate read
sees it (read-your-writes). Runs on SQLite and, when configured, on MariaDB.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from testkit import TokenSigner


class _InjectedCommitError(RuntimeError):
    pass


class _DeadlockReply(Exception):
    """Stands in for the driver's error: MySQL's ``(1213, 'Deadlock found …')``."""


def _deadlock() -> OperationalError:
    return OperationalError("COMMIT", {}, _DeadlockReply(1213, "Deadlock found"))


@contextmanager
def failing_commits(
    engine: AsyncEngine, make_error: Callable[[], Exception], times: int
) -> Iterator[list[int]]:
    """Make the next ``times`` commits on ``engine`` raise; yields a one-item commit counter."""
    calls = [0]

    def on_commit(_conn: Any) -> None:
        calls[0] += 1
        if calls[0] <= times:
            raise make_error()

    event.listen(engine.sync_engine, "commit", on_commit)
    try:
        yield calls
    finally:
        event.remove(engine.sync_engine, "commit", on_commit)


@dataclass
class WriteCase:
    """One write endpoint: ``write`` performs it, ``stored`` says whether its effect is visible."""

    write: Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]
    stored: Callable[[httpx.AsyncClient], Awaitable[bool]]


def _auth_case(token_signer: TokenSigner) -> WriteCase:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    password = "a long enough passphrase"

    async def write(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(
            "/v1/auth/register",
            json={"tenant_name": "Acme", "email": email, "password": password},
        )

    async def stored(http: httpx.AsyncClient) -> bool:
        login = await http.post("/v1/auth/login", json={"email": email, "password": password})
        return login.status_code == 200

    return WriteCase(write, stored)


def _customers_case(token_signer: TokenSigner) -> WriteCase:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    headers = {"Authorization": f"Bearer {token_signer.issue(tenant)}"}
    customer = f"c-{uuid.uuid4().hex[:8]}"

    async def write(http: httpx.AsyncClient) -> httpx.Response:
        event_body = {
            "event_id": uuid.uuid4().hex,
            "customer_id": customer,
            "type": "login",
            "occurred_at": "2026-11-01T10:00:00Z",
        }
        return await http.post("/v1/events", json={"events": [event_body]}, headers=headers)

    async def stored(http: httpx.AsyncClient) -> bool:
        return (await http.get(f"/v1/customers/{customer}", headers=headers)).status_code == 200

    return WriteCase(write, stored)


def _prediction_case(token_signer: TokenSigner) -> WriteCase:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    headers = {"Authorization": f"Bearer {token_signer.issue(tenant)}"}
    action = f"call-{uuid.uuid4().hex[:6]}"

    async def write(http: httpx.AsyncClient) -> httpx.Response:
        rules = {"rules": [{"feature": "payment_failures_last_90d", "action": action}]}
        return await http.put("/v1/recommendation-rules", json=rules, headers=headers)

    async def stored(http: httpx.AsyncClient) -> bool:
        body = (await http.get("/v1/recommendation-rules", headers=headers)).json()
        return any(rule["action"] == action for rule in body["rules"])

    return WriteCase(write, stored)


def _alerts_case(token_signer: TokenSigner) -> WriteCase:
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    headers = {"Authorization": f"Bearer {token_signer.issue(tenant)}"}

    async def write(http: httpx.AsyncClient) -> httpx.Response:
        rules = {"high_risk_threshold": 0.7, "risk_increase_threshold": 0.2, "cooldown_minutes": 17}
        return await http.put("/v1/alert-rules", json=rules, headers=headers)

    async def stored(http: httpx.AsyncClient) -> bool:
        body = (await http.get("/v1/alert-rules", headers=headers)).json()
        return bool(body["cooldown_minutes"] == 17)

    return WriteCase(write, stored)


def _app(service: str, database_url: str, kafka_bootstrap: str, signer: TokenSigner) -> FastAPI:
    common: dict[str, Any] = {
        "database_url": database_url,
        "log_json": False,
        "log_level": "WARNING",
    }
    if service == "auth":
        from churn_auth.config import Settings as AuthSettings
        from churn_auth.main import create_app as create_auth

        return create_auth(AuthSettings(**common, rate_limit_enabled=False))
    broker: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "run_workers": False,
        "kafka_linger_ms": 0,
    }
    if service == "customers":
        from churn_customers.config import Settings as CustomersSettings
        from churn_customers.main import create_app as create_customers

        return create_customers(
            CustomersSettings(**common, **broker), token_verifier=signer.verifier()
        )
    if service == "prediction":
        from churn_prediction.config import Settings as PredictionSettings
        from churn_prediction.main import create_app as create_prediction

        return create_prediction(
            PredictionSettings(**common, **broker, customers_url="http://customers.test"),
            token_verifier=signer.verifier(),
        )
    from churn_alerts.config import Settings as AlertsSettings
    from churn_alerts.main import create_app as create_alerts

    return create_alerts(AlertsSettings(**common, **broker), token_verifier=signer.verifier())


CASES: dict[str, Callable[[TokenSigner], WriteCase]] = {
    "auth": _auth_case,
    "customers": _customers_case,
    "prediction": _prediction_case,
    "alerts": _alerts_case,
}


@pytest.fixture(params=sorted(CASES))
def service_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def _running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process. ``raise_app_exceptions=False`` makes the client see what a real one
    would: whatever status went out, even if the app failed after sending it."""
    async with LifespanManager(app, startup_timeout=120, shutdown_timeout=120) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


@pytest.fixture
async def running(
    service_name: str, database_url: str, kafka_bootstrap: str, token_signer: TokenSigner
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = _app(service_name, database_url, kafka_bootstrap, token_signer)
    async with _running(app) as http:
        # Failures are injected into the engine's next commits, so nothing else may commit on
        # it meanwhile: the apps run without workers (prediction's file-job claim loop, which
        # commits every few seconds, runs with them). The customers' import claim loop runs in
        # the API process itself, and its first round commits as the test starts: stopped.
        runner = getattr(app.state, "import_runner", None)
        if runner is not None:
            await runner.stop()
        yield app, http


async def test_a_failed_commit_is_a_5xx_problem_and_nothing_is_stored(
    running: tuple[FastAPI, httpx.AsyncClient], service_name: str, token_signer: TokenSigner
) -> None:
    app, http = running
    case = CASES[service_name](token_signer)
    with failing_commits(app.state.engine, lambda: _InjectedCommitError("disk full"), times=1):
        response = await case.write(http)
    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert not await case.stored(http)


async def test_a_deadlock_at_commit_is_retried_and_the_write_lands_once(
    running: tuple[FastAPI, httpx.AsyncClient], service_name: str, token_signer: TokenSigner
) -> None:
    app, http = running
    case = CASES[service_name](token_signer)
    with failing_commits(app.state.engine, _deadlock, times=1) as commits:
        response = await case.write(http)
    assert 200 <= response.status_code < 300, response.text
    assert commits[0] >= 2  # the first attempt failed, a second one committed
    assert await case.stored(http)


async def test_a_deadlock_that_persists_answers_503_with_retry_after(
    running: tuple[FastAPI, httpx.AsyncClient], service_name: str, token_signer: TokenSigner
) -> None:
    app, http = running
    case = CASES[service_name](token_signer)
    with failing_commits(app.state.engine, _deadlock, times=1000):
        response = await case.write(http)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert not await case.stored(http)


async def test_a_write_is_visible_to_the_next_read(
    running: tuple[FastAPI, httpx.AsyncClient], service_name: str, token_signer: TokenSigner
) -> None:
    _, http = running
    case = CASES[service_name](token_signer)
    response = await case.write(http)
    assert 200 <= response.status_code < 300, response.text
    assert await case.stored(http)


async def test_the_connection_stays_usable_after_a_500(
    running: tuple[FastAPI, httpx.AsyncClient], service_name: str, token_signer: TokenSigner
) -> None:
    """The error is rendered, not re-raised: a server would otherwise drop the connection and a
    pooling proxy would fail the next, unrelated request on it."""
    app, http = running
    case = CASES[service_name](token_signer)
    raised: list[BaseException] = []

    async def call(scope: Any, receive: Any, send: Any) -> None:
        try:
            await app(scope, receive, send)
        except BaseException as exc:
            raised.append(exc)
            raise

    transport = httpx.ASGITransport(app=call, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as direct:
        with failing_commits(app.state.engine, lambda: _InjectedCommitError("boom"), times=1):
            response = await case.write(direct)
    assert response.status_code == 500
    assert raised == []
    assert (await http.get("/livez")).status_code == 200
