"""Drives a running stack the way a tenant would: register, log in, load history, stream."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from churn_cli.simulator import CustomerSimulator, Event

DEMO_TENANT = "Demo Retail"
DEMO_EMAIL = "demo@churn.example"
DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed to the user on purpose
MAX_EVENTS_PER_REQUEST = 10_000


@dataclass
class DemoLogin:
    email: str
    password: str
    access_token: str
    refresh_token: str


class DemoClient:
    def __init__(self, gateway_url: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(base_url=gateway_url, timeout=timeout)
        self.login_data: DemoLogin | None = None

    def close(self) -> None:
        self.http.close()

    def register_and_login(
        self, tenant: str = DEMO_TENANT, email: str = DEMO_EMAIL, password: str = DEMO_PASSWORD
    ) -> DemoLogin:
        response = self.http.post(
            "/v1/auth/register", json={"tenant_name": tenant, "email": email, "password": password}
        )
        if response.status_code not in (201, 409):
            response.raise_for_status()
        tokens = self.http.post("/v1/auth/login", json={"email": email, "password": password})
        tokens.raise_for_status()
        body = tokens.json()
        self.login_data = DemoLogin(email, password, body["access_token"], body["refresh_token"])
        self.http.headers["Authorization"] = f"Bearer {body['access_token']}"
        return self.login_data

    def refresh(self) -> None:
        assert self.login_data is not None
        response = self.http.post(
            "/v1/auth/refresh", json={"refresh_token": self.login_data.refresh_token}
        )
        response.raise_for_status()
        body = response.json()
        self.login_data.access_token = body["access_token"]
        self.login_data.refresh_token = body["refresh_token"]
        self.http.headers["Authorization"] = f"Bearer {body['access_token']}"

    def post_events(self, events: list[Event], *, backfill: bool = False) -> tuple[int, int]:
        accepted = duplicates = 0
        for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
            chunk = events[start : start + MAX_EVENTS_PER_REQUEST]
            response = self.http.post(
                "/v1/events",
                params={"backfill": "true"} if backfill else None,
                json={"events": chunk},
            )
            if response.status_code == 401:
                self.refresh()
                response = self.http.post(
                    "/v1/events",
                    params={"backfill": "true"} if backfill else None,
                    json={"events": chunk},
                )
            response.raise_for_status()
            accepted += response.json()["accepted"]
            duplicates += response.json()["duplicates"]
        return accepted, duplicates


def run_demo(
    gateway_url: str,
    *,
    customers: int = 200,
    events_per_second: float = 20.0,
    stop: threading.Event,
    new_at_risk_every: int = 10,
    on_status: Callable[[str], None] = print,
) -> None:
    """Seed the demo tenant with simulated history, then stream live events until ``stop``.

    Every ``new_at_risk_every`` seconds a customer who drifted away months ago comes into view,
    so fresh alerts keep appearing after the first wave (alerts have a per-customer cooldown).
    """
    client = DemoClient(gateway_url)
    try:
        login = client.register_and_login()
        on_status(f"login: {login.email} / {login.password}")  # shown as "demo login: …"
        sim = CustomerSimulator(customers)
        history = sim.history()
        accepted, _ = client.post_events(history, backfill=True)
        on_status(f"loaded {accepted} historical events for {customers} simulated customers")
        tick = 1.0
        last_refresh = time.monotonic()
        ticks = 0
        while not stop.is_set():
            started = time.monotonic()
            ticks += 1
            try:
                if ticks % new_at_risk_every == 0:
                    client.post_events(sim.add_drifting_customer(), backfill=True)
                batch = sim.live_events(max(1, int(events_per_second * tick)))
                client.post_events(batch)
            except httpx.HTTPError as exc:
                on_status(f"streaming paused: {exc}")
            if time.monotonic() - last_refresh > 600:
                client.refresh()
                last_refresh = time.monotonic()
            stop.wait(max(0.0, tick - (time.monotonic() - started)))
    finally:
        client.close()
