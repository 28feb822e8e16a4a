"""The smoke test of a deployed platform, through its published gateway only.

register → login → live socket → events → a ``churn_alert`` on the socket and a signed POST at
the webhook receiver → ``GET /v1/alerts``. Run by deploy/smoke.sh with the project's
environment (httpx, python-socketio, the demo simulator's stories)::

    python deploy/ci/smoke_flow.py --gateway http://127.0.0.1:PORT \
        --webhook-inbox http://127.0.0.1:PORT2/received --webhook-url http://webhook-receiver:9000/hook

Exits 0 when every step passed, 1 with the failing step otherwise. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import sys
import time
import uuid
from typing import Any

import httpx
import socketio

from churn_cli.simulator import at_risk_story, loyal_story


class SmokeFailure(Exception):
    pass


def step(message: str, started: float) -> None:
    print(f"smoke: [{time.monotonic() - started:6.1f} s] {message}", flush=True)


async def wait_for(what: str, predicate: Any, seconds: float, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise SmokeFailure(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


def expect(response: httpx.Response, status: int, what: str) -> dict[str, Any]:
    if response.status_code != status:
        raise SmokeFailure(
            f"{what}: HTTP {response.status_code} (wanted {status}): {response.text[:500]}"
        )
    return response.json() if response.content else {}


async def run(args: argparse.Namespace) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=args.gateway, timeout=30) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for("the gateway's /readyz", ready, args.ready_timeout, 1.0)
        step(f"gateway ready at {args.gateway}", started)
        expect(await client.get("/openapi.json"), 200, "merged OpenAPI document")

        email = f"smoke-{uuid.uuid4().hex[:8]}@example.com"
        password = "correct horse battery staple smoke"  # noqa: S105 - a throw-away test tenant
        registered = expect(
            await client.post(
                "/v1/auth/register",
                json={"tenant_name": "Smoke Shop", "email": email, "password": password},
            ),
            201,
            "register",
        )
        tokens = expect(
            await client.post("/v1/auth/login", json={"email": email, "password": password}),
            200,
            "login",
        )
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        step(f"registered and logged in (tenant {registered.get('tenant_id', '?')})", started)

        # Each service verifies tokens with the auth service's key set, fetched on its first
        # authenticated request; wait (bounded) until every one answers a token, and say so when
        # one needed more than one try (a slow first key-set fetch answers 401).
        for path in ("/v1/customers", "/v1/alerts", "/v1/alert-channels", "/v1/models/current"):
            deadline = time.monotonic() + 60
            tries = 0
            while True:
                tries += 1
                answer = await client.get(path, headers=headers)
                if answer.status_code == 200:
                    break
                if time.monotonic() > deadline or answer.status_code not in (401, 502, 503, 504):
                    expect(answer, 200, f"GET {path}")
                print(
                    f"smoke: GET {path}: HTTP {answer.status_code} ({answer.text[:160]}); retrying",
                    flush=True,
                )
                await asyncio.sleep(2)
            if tries > 1:
                step(f"GET {path} answered after {tries} tries", started)
        step("every service accepts the token", started)

        channel = expect(
            await client.post(
                "/v1/alert-channels",
                headers=headers,
                json={"kind": "webhook", "url": args.webhook_url},
            ),
            201,
            "create the webhook channel",
        )
        secret = channel["secret"]
        step(f"webhook channel -> {args.webhook_url}", started)

        feed: dict[str, list[Any]] = {"churn_alert": [], "score_update": []}
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("churn_alert")
        async def on_alert(data: Any) -> None:
            feed["churn_alert"].append(data)

        @sio.on("score_update")
        async def on_score(data: Any) -> None:
            feed["score_update"].append(data)

        await sio.connect(
            args.gateway,
            auth={"token": tokens["access_token"]},
            transports=["websocket"],
            socketio_path="/socket.io",
            wait_timeout=15,
        )
        try:
            step("live feed connected", started)
            events = at_risk_story("smoke-risky") + loyal_story("smoke-loyal")
            posted = expect(
                await client.post("/v1/events", headers=headers, json={"events": events}),
                202,
                "post events",
            )
            if posted.get("accepted") != len(events):
                raise SmokeFailure(f"post events: {posted} (sent {len(events)})")
            step(f"posted {len(events)} events", started)

            alerts = await wait_for(
                "a churn_alert for smoke-risky on the socket",
                lambda: [a for a in feed["churn_alert"] if a.get("customer_id") == "smoke-risky"],
                args.alert_timeout,
            )
            alert = alerts[0]
            if alert.get("churn_probability", 0) < 0.7:
                raise SmokeFailure(f"alert with a low probability: {alert}")
            step(
                f"churn_alert on the socket: {alert.get('kind')} "
                f"p={alert['churn_probability']:.3f}",
                started,
            )

            async def hooks() -> list[dict[str, Any]]:
                try:
                    inbox = (await client.get(args.webhook_inbox)).json()
                except (httpx.HTTPError, ValueError):
                    return []
                return [
                    h
                    for h in inbox
                    if isinstance(h.get("body"), dict)
                    and h["body"].get("customer_id") == "smoke-risky"
                ]

            hook = (await wait_for("the signed webhook", hooks, args.alert_timeout))[0]
            header = {k.lower(): v for k, v in hook["headers"].items()}.get("x-churn-signature", "")
            parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
            expected = hmac.new(
                secret.encode(), f"{parts.get('t')}.{hook['raw']}".encode(), hashlib.sha256
            ).hexdigest()
            if not hmac.compare_digest(parts.get("v1", ""), expected):
                raise SmokeFailure(f"webhook signature does not verify: {header!r}")
            step("webhook received, signature verified", started)

            listed = expect(await client.get("/v1/alerts", headers=headers), 200, "GET /v1/alerts")
            customers = [a["customer_id"] for a in listed.get("items", [])]
            if customers != ["smoke-risky"]:
                raise SmokeFailure(f"GET /v1/alerts lists {customers}, wanted ['smoke-risky']")
            step("GET /v1/alerts lists the alert", started)
        finally:
            await sio.disconnect()
    step("PASSED", started)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--webhook-inbox", required=True)
    parser.add_argument("--webhook-url", required=True)
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument("--alert-timeout", type=float, default=180)
    args = parser.parse_args()
    try:
        asyncio.run(run(args))
    except SmokeFailure as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
