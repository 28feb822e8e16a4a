"""Delivery guarantees with real loopback receivers: Standard Webhooks signatures, Retry-After,
no retry of a refusal, dead letters and their replay, channels disabled after repeated dead
deliveries, pacing per destination, and the channel test."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from churn_alerts.delivery import Pace, judge_answer, retry_after_seconds
from churn_alerts.main import create_app
from churn_alerts.rules import TenantScore
from churn_alerts.service import AlertService
from churn_alerts.worker import WebhookDeliveryWorker
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work
from testkit import wait_for

Answer = tuple[int, dict[str, str]]


class ScriptedReceiver:
    """A loopback HTTP receiver: ``answer(n)`` gives the status and headers of the n-th request
    (from 0); every request is recorded with its arrival time."""

    def __init__(self, answer: Callable[[int], Answer]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer = answer
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(
                        {"at": time.monotonic(), "headers": dict(self.headers), "raw": body}
                    )
                    status, headers = receiver.answer(n)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def ids(self) -> list[str]:
        return [r["headers"]["webhook-id"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Callable[[Callable[[int], Answer]], ScriptedReceiver]]:
    started: list[ScriptedReceiver] = []

    def start(answer: Callable[[int], Answer]) -> ScriptedReceiver:
        started.append(ScriptedReceiver(answer))
        return started[-1]

    yield start
    for r in started:
        r.close()


@pytest.fixture
def settings(make_settings):
    def make(**overrides: Any) -> Any:
        return make_settings(
            **{
                "run_workers": False,
                "delivery_backoff_base_seconds": 0.2,
                "delivery_backoff_max_seconds": 0.5,
                **overrides,
            }
        )

    return make


@pytest.fixture
async def stack(settings, token_signer, in_process):
    """The API (in process) and a delivery worker on the same database."""
    started: list[Any] = []

    async def start(**overrides: Any) -> tuple[Any, Any, WebhookDeliveryWorker]:
        app = create_app(settings(**overrides), token_verifier=token_signer.verifier())
        context = in_process(app)
        client = await context.__aenter__()
        worker = WebhookDeliveryWorker(app.state.session_factory, app.state.settings)
        started.append((context, worker))
        return app, client, worker

    yield start
    for context, worker in reversed(started):
        await worker.stop()
        await context.__aexit__(None, None, None)


def _owner(token_signer: Any) -> tuple[str, dict[str, str]]:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    token = token_signer.issue(tenant_id, "owner", subject="user-owner")
    return tenant_id, {"Authorization": f"Bearer {token}"}


async def _channel(client: Any, headers: dict[str, str], url: str, kind: str = "webhook") -> Any:
    response = await client.post(
        "/v1/alert-channels", headers=headers, json={"kind": kind, "url": url, "name": "hook"}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _raise(app: Any, tenant_id: str, customers: int, prefix: str = "c") -> None:
    async with unit_of_work(app.state.session_factory) as session:
        await AlertService(session).raise_alerts(
            [
                TenantScore(
                    tenant_id,
                    ChurnScoreComputedV1(
                        customer_id=f"{prefix}-{i}",
                        churn_probability=0.9,
                        risk_level="high",
                        model_version="m1",
                        scored_at=datetime.now(UTC),
                    ),
                )
                for i in range(customers)
            ]
        )


async def _statuses(client: Any, headers: dict[str, str]) -> list[str]:
    page = await client.get("/v1/deliveries", headers=headers, params={"limit": 200})
    return sorted(d["status"] for d in page.json()["items"])


class TestJudgingAnswers:
    NOW = datetime(2026, 1, 1, tzinfo=UTC)

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("2", 2.0),
            ("0", 0.0),
            ("99999", 3600.0),
            ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),
            ("Wed, 31 Dec 2025 23:00:00 GMT", 0.0),
            ("soon", None),
            (None, None),
        ],
    )
    def test_retry_after_in_seconds_or_as_a_date_capped(self, value, expected):
        assert retry_after_seconds(value, self.NOW, 3600.0) == expected

    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            (200, "delivered"),
            (204, "delivered"),
            (301, "rejected"),
            (400, "rejected"),
            (404, "rejected"),
            (408, "failed"),
            (409, "failed"),
            (425, "failed"),
            (429, "failed"),
            (500, "failed"),
            (503, "failed"),
        ],
    )
    def test_what_is_retried(self, status, outcome):
        from churn_alerts.delivery import WebhookJob

        job = WebhookJob("d1", "http://x", "whsec_", "webhook", b"{}", 1)
        assert judge_answer(job, status, None, self.NOW, 60.0).outcome == outcome

    def test_pace_admits_a_burst_then_one_per_interval(self):
        pace = Pace(burst=2, interval_seconds=1.0)
        now = self.NOW
        ok1, tat = pace.admit(None, now)
        ok2, tat = pace.admit(tat, now)
        ok3, when = pace.admit(tat, now)
        assert (ok1, ok2, ok3) == (True, True, False)
        assert when == now + timedelta(seconds=1)


class TestSignatures:
    async def test_standard_webhooks_library_verifies_every_delivery(
        self, stack, receiver, token_signer
    ):
        app, client, worker = await stack()
        hook = receiver(lambda n: (204, {}))
        tenant_id, headers = _owner(token_signer)
        channel = await _channel(client, headers, hook.url)
        assert channel["secret"].startswith("whsec_")
        await _raise(app, tenant_id, 1)
        await worker.deliver_once()
        [request] = hook.requests
        payload = Webhook(channel["secret"]).verify(request["raw"], request["headers"])
        assert payload["event"] == "churn_alert"
        assert payload["customer_id"] == "c-0"
        assert request["headers"]["webhook-signature"].startswith("v1,")
        with pytest.raises(Exception, match="signature"):
            Webhook(channel["secret"]).verify(request["raw"] + b" ", request["headers"])


class TestRetries:
    async def test_429_with_retry_after_is_honoured_and_delivered_once(
        self, stack, receiver, token_signer
    ):
        app, client, worker = await stack()
        hook = receiver(lambda n: (429, {"Retry-After": "2"}) if n < 2 else (200, {}))
        tenant_id, headers = _owner(token_signer)
        await _channel(client, headers, hook.url)
        await _raise(app, tenant_id, 1)
        worker.start()
        await wait_for(lambda: _is(client, headers, ["delivered"]), timeout=20)
        times = [r["at"] for r in hook.requests]
        assert len(hook.requests) == 3
        assert len(set(hook.ids())) == 1
        assert times[1] - times[0] >= 2.0
        assert times[2] - times[1] >= 2.0

    async def test_a_refusal_is_not_retried_and_dies_at_once(self, stack, receiver, token_signer):
        app, client, worker = await stack()
        hook = receiver(lambda n: (410, {}))
        tenant_id, headers = _owner(token_signer)
        await _channel(client, headers, hook.url)
        await _raise(app, tenant_id, 1)
        await worker.deliver_once()
        await worker.deliver_once()
        dead = await client.get("/v1/deliveries", headers=headers, params={"status": "dead"})
        [delivery] = dead.json()["items"]
        assert len(hook.requests) == 1
        assert delivery["last_error"] == "HTTP 410 (not retried)"


async def _is(client: Any, headers: dict[str, str], expected: list[str]) -> bool:
    return await _statuses(client, headers) == expected


class TestDeadLetters:
    async def test_a_receiver_down_for_a_while_dead_then_replayed_delivered_once(
        self, stack, receiver, token_signer
    ):
        app, client, worker = await stack(max_delivery_attempts=3)
        down = {"value": True}
        hook = receiver(lambda n: (503, {}) if down["value"] else (200, {}))
        tenant_id, headers = _owner(token_signer)
        await _channel(client, headers, hook.url)
        await _raise(app, tenant_id, 1)
        worker.start()
        await wait_for(lambda: _is(client, headers, ["dead"]), timeout=20)
        dead = await client.get("/v1/deliveries", headers=headers, params={"status": "dead"})
        [delivery] = dead.json()["items"]
        assert len(hook.requests) == 3
        down["value"] = False
        retried = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=headers)
        assert retried.status_code == 200, retried.text
        worker.notify()
        await wait_for(lambda: _is(client, headers, ["delivered"]), timeout=20)
        again = await client.post(f"/v1/deliveries/{delivery['id']}/retry", headers=headers)
        assert again.status_code == 409
        assert len(hook.requests) == 4
        assert set(hook.ids()) == {delivery["id"]}

    async def test_a_channel_that_keeps_failing_is_disabled_and_the_tenant_told(
        self, stack, receiver, token_signer
    ):
        app, client, worker = await stack(max_delivery_attempts=1, channel_disable_after_dead=3)
        hook = receiver(lambda n: (500, {}))
        tenant_id, headers = _owner(token_signer)
        channel = await _channel(client, headers, hook.url)
        await _raise(app, tenant_id, 3)
        await worker.deliver_once()
        await _raise(app, tenant_id, 2, prefix="later")
        await worker.deliver_once()
        listed = (await client.get("/v1/alert-channels", headers=headers)).json()["items"]
        assert listed[0]["disabled_at"] is not None
        assert await _statuses(client, headers) == ["dead"] * 5
        assert len(hook.requests) == 3  # the last two died unsent: the channel was disabled
        async with app.state.session_factory() as session:
            events = (
                await session.exec(
                    sa.text("SELECT payload FROM outbox WHERE payload LIKE :p").bindparams(
                        p="%AlertChannelDisabledV1%"
                    )
                )
            ).all()
        assert any(channel["id"] in json.loads(p)["payload"]["channel_id"] for (p,) in events)
        dead = (await client.get("/v1/deliveries", headers=headers)).json()["items"]
        refused = await client.post(f"/v1/deliveries/{dead[0]['id']}/retry", headers=headers)
        assert refused.status_code == 409
        enabled = await client.post(f"/v1/alert-channels/{channel['id']}/enable", headers=headers)
        assert enabled.json()["disabled_at"] is None
        replayed = await client.post(f"/v1/deliveries/{dead[0]['id']}/retry", headers=headers)
        assert replayed.status_code == 200


class TestPacing:
    async def test_a_burst_of_100_reaches_a_webhook_paced_without_a_429(
        self, stack, receiver, token_signer
    ):
        app, client, worker = await stack(webhook_burst=5, webhook_rate_per_second=40)
        # What the receiver tolerates: burst + rate x window, plus 2 for arrival jitter (on a
        # loaded CI host requests sent on time reached it bunched: 26 in 0.5 s, one retried).
        window, limit = 0.5, 5 + 40 * 0.5 + 2

        def answer(n: int) -> Answer:
            now = hook.requests[n]["at"]
            recent = [r for r in hook.requests if now - r["at"] < window]
            return (429, {"Retry-After": "1"}) if len(recent) > limit else (204, {})

        hook = receiver(answer)
        tenant_id, headers = _owner(token_signer)
        await _channel(client, headers, hook.url)
        await _raise(app, tenant_id, 100)
        worker.start()
        await wait_for(lambda: _is(client, headers, ["delivered"] * 100), timeout=30)
        assert len(hook.requests) == 100
        assert len(set(hook.ids())) == 100
        span = hook.requests[-1]["at"] - hook.requests[0]["at"]
        assert span >= (100 - 5) / 40 * 0.9

    async def test_discord_gets_at_most_5_requests_in_any_2_seconds(
        self, stack, receiver, token_signer
    ):
        app, client, worker = await stack()

        def answer(n: int) -> Answer:
            now = hook.requests[n]["at"]
            recent = [r for r in hook.requests if now - r["at"] < 2.0]
            return (429, {"Retry-After": "2"}) if len(recent) > 5 else (204, {})

        hook = receiver(answer)
        tenant_id, headers = _owner(token_signer)
        await _channel(client, headers, hook.url, kind="discord")
        await _raise(app, tenant_id, 8)
        worker.start()
        await wait_for(lambda: _is(client, headers, ["delivered"] * 8), timeout=30)
        assert len(hook.requests) == 8


class TestChannelTest:
    async def test_reports_the_receivers_answer(self, stack, receiver, token_signer):
        _app, client, _worker = await stack()
        ok = receiver(lambda n: (204, {}))
        broken = receiver(lambda n: (404, {}))
        _tenant_id, headers = _owner(token_signer)
        good = await _channel(client, headers, ok.url)
        bad = await _channel(client, headers, broken.url)
        passed = await client.post(f"/v1/alert-channels/{good['id']}/test", headers=headers)
        failed = await client.post(f"/v1/alert-channels/{bad['id']}/test", headers=headers)
        _other_tenant, other_headers = _owner(token_signer)
        foreign = await client.post(f"/v1/alert-channels/{good['id']}/test", headers=other_headers)
        assert passed.json()["delivered"] is True
        assert passed.json()["status_code"] == 204
        assert (failed.json()["delivered"], failed.json()["status_code"]) == (False, 404)
        assert foreign.status_code == 404
        [request] = ok.requests
        body = Webhook(good["secret"]).verify(request["raw"], request["headers"])
        assert body["test"] is True
        assert request["headers"]["X-Churn-Event"] == "churn_alert_test"
        assert await _statuses(client, headers) == []


class TestNoRedirects:
    async def test_a_redirect_is_never_followed(self, stack, receiver, token_signer):
        app, client, worker = await stack()
        target = receiver(lambda n: (204, {}))
        hook = receiver(lambda n: (307, {"Location": target.url}))
        tenant_id, headers = _owner(token_signer)
        await _channel(client, headers, hook.url)
        await _raise(app, tenant_id, 1)
        await worker.deliver_once()
        await worker.deliver_once()
        [delivery] = (await client.get("/v1/deliveries", headers=headers)).json()["items"]
        assert len(hook.requests) == 1
        assert target.requests == []
        assert (delivery["status"], delivery["last_error"]) == ("dead", "HTTP 307 (not retried)")
