"""Simulated customers whose behaviour explains whether they leave.

Each customer follows a persona:

* ``loyal``: orders every two to six weeks, opens about half of the e-mails, logs in weekly;
* ``drifting``: used to behave like a loyal customer, then stopped ordering 60-250 days ago;
  since then logs in rarely, ignores e-mails, has failed payments and opens support tickets;
* ``new``: signed up in the last month and is still exploring.

The history is emitted as events in the public ingest shape; :meth:`live_events` continues the
story "now", and now and then a loyal customer starts drifting, so fresh alerts keep appearing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

Event = dict[str, Any]


@dataclass
class SimulatedCustomer:
    customer_id: str
    persona: str
    signup_at: datetime
    #: For drifting customers: when they stopped ordering.
    drift_started_at: datetime | None
    order_interval_days: float
    basket: float


def _event(customer_id: str, type_: str, at: datetime, **properties: Any) -> Event:
    return {
        "event_id": uuid.uuid4().hex,
        "customer_id": customer_id,
        "type": type_,
        "occurred_at": at.isoformat(),
        "properties": properties,
    }


class CustomerSimulator:
    def __init__(self, n_customers: int = 200, *, seed: int = 7, drifting_share: float = 0.25):
        self.rng = np.random.default_rng(seed)
        self.now = datetime.now(UTC)
        self.customers: list[SimulatedCustomer] = []
        self._spotlight: list[SimulatedCustomer] = []
        for i in range(n_customers):
            roll = self.rng.random()
            persona = "drifting" if roll < drifting_share else "new" if roll > 0.92 else "loyal"
            age_days = (
                float(self.rng.uniform(3, 30))
                if persona == "new"
                else float(self.rng.uniform(200, 900))
            )
            signup_at = self.now - timedelta(days=age_days)
            drift = (
                self.now - timedelta(days=float(self.rng.uniform(60, min(250, age_days - 30))))
                if persona == "drifting"
                else None
            )
            self.customers.append(
                SimulatedCustomer(
                    customer_id=f"cust-{i:05d}",
                    persona=persona,
                    signup_at=signup_at,
                    drift_started_at=drift,
                    order_interval_days=float(self.rng.uniform(12, 45)),
                    basket=float(self.rng.uniform(25, 160)),
                )
            )

    def history(self) -> list[Event]:
        """Every customer's past, oldest first."""
        events: list[Event] = []
        for c in self.customers:
            events.extend(self._customer_history(c))
        events.sort(key=lambda e: e["occurred_at"])
        return events

    def _customer_history(self, c: SimulatedCustomer) -> list[Event]:
        rng = self.rng
        out = [_event(c.customer_id, "signup", c.signup_at)]
        active_until = c.drift_started_at or self.now
        t = c.signup_at + timedelta(days=float(rng.uniform(0.5, 5)))
        while t < active_until:
            discount = float(round(c.basket * 0.1, 2)) if rng.random() < 0.2 else 0.0
            amount = float(round(max(5.0, rng.normal(c.basket, c.basket * 0.25)), 2))
            out.append(_event(c.customer_id, "order_placed", t, amount=amount, discount=discount))
            if rng.random() < 0.05:
                out.append(
                    _event(c.customer_id, "order_returned", t + timedelta(days=5), amount=amount)
                )
            out.append(_event(c.customer_id, "loyalty_points_changed", t, delta=int(amount)))
            t += timedelta(days=float(rng.exponential(c.order_interval_days)) + 1)
        # Weekly e-mails and logins over the whole life, engagement falling after drift.
        t = c.signup_at
        while t < self.now - timedelta(hours=1):
            engaged = c.drift_started_at is None or t < c.drift_started_at
            out.append(_event(c.customer_id, "email_sent", t))
            if rng.random() < (0.5 if engaged else 0.04):
                out.append(_event(c.customer_id, "email_opened", t + timedelta(hours=3)))
            for _ in range(int(rng.poisson(2.5 if engaged else 0.2))):
                out.append(
                    _event(c.customer_id, "login", t + timedelta(hours=float(rng.uniform(0, 160))))
                )
            if not engaged and rng.random() < 0.3:
                out.append(
                    _event(
                        c.customer_id,
                        "payment_failed",
                        t + timedelta(hours=float(rng.uniform(0, 160))),
                        amount=c.basket,
                    )
                )
            if rng.random() < (0.01 if engaged else 0.25):
                out.append(
                    _event(
                        c.customer_id,
                        "support_ticket_opened",
                        t + timedelta(hours=float(rng.uniform(0, 160))),
                    )
                )
            t += timedelta(days=7)
        return [e for e in out if e["occurred_at"] < self.now.isoformat()]

    def add_drifting_customer(self) -> list[Event]:
        """A customer who went quiet months ago comes into view (their history, to backfill);
        their next live events (failed payments, tickets) make them a fresh high-risk alert."""
        now = datetime.now(UTC)
        rng = self.rng
        age = float(rng.uniform(250, 900))
        customer = SimulatedCustomer(
            customer_id=f"cust-{len(self.customers):05d}",
            persona="drifting",
            signup_at=now - timedelta(days=age),
            drift_started_at=now - timedelta(days=float(rng.uniform(90, 220))),
            order_interval_days=float(rng.uniform(12, 45)),
            basket=float(rng.uniform(25, 160)),
        )
        self.customers.append(customer)
        self._spotlight.append(customer)
        return self._customer_history(customer)

    def live_events(self, n: int) -> list[Event]:
        """``n`` events happening now; occasionally a loyal customer starts drifting."""
        now = datetime.now(UTC)
        rng = self.rng
        out: list[Event] = []
        loyal = [c for c in self.customers if c.persona == "loyal"]
        if loyal and rng.random() < 0.05:
            turning = loyal[int(rng.integers(len(loyal)))]
            turning.persona = "drifting"
            turning.drift_started_at = now
        while self._spotlight and len(out) < n:
            c = self._spotlight.pop()
            out.append(_event(c.customer_id, "payment_failed", now, amount=c.basket))
        for _ in range(n - len(out)):
            c = self.customers[int(rng.integers(len(self.customers)))]
            if c.persona == "drifting":
                kind = str(
                    rng.choice(
                        ["payment_failed", "support_ticket_opened", "email_sent", "login"],
                        p=[0.35, 0.35, 0.2, 0.1],
                    )
                )
                props: dict[str, Any] = {"amount": c.basket} if kind == "payment_failed" else {}
            else:
                kind = str(
                    rng.choice(
                        ["login", "email_opened", "order_placed", "email_sent"],
                        p=[0.4, 0.25, 0.15, 0.2],
                    )
                )
                props = (
                    {"amount": float(round(c.basket, 2)), "discount": 0.0}
                    if kind == "order_placed"
                    else {}
                )
            out.append(_event(c.customer_id, kind, now, **props))
        return out


def at_risk_story(customer_id: str, now: datetime | None = None) -> list[Event]:
    """A compact history that any sensible churn model scores as high risk: a long-standing
    customer who stopped ordering ten months ago, ignores e-mails and keeps failing payments."""
    now = now or datetime.now(UTC)
    signup = now - timedelta(days=700)
    events = [_event(customer_id, "signup", signup)]
    for k in range(3):
        events.append(
            _event(
                customer_id,
                "order_placed",
                signup + timedelta(days=30 + 40 * k),
                amount=40.0,
                discount=5.0,
            )
        )
    for k in range(12):
        events.append(_event(customer_id, "email_sent", now - timedelta(days=7 * k + 1)))
    for k in range(4):
        events.append(
            _event(customer_id, "payment_failed", now - timedelta(days=10 * k + 1), amount=40.0)
        )
        events.append(
            _event(customer_id, "support_ticket_opened", now - timedelta(days=12 * k + 2))
        )
    return events


def loyal_story(customer_id: str, now: datetime | None = None) -> list[Event]:
    """A customer who orders every three weeks, reads the newsletter and logs in often."""
    now = now or datetime.now(UTC)
    signup = now - timedelta(days=400)
    events = [_event(customer_id, "signup", signup)]
    for k in range(19):
        events.append(
            _event(
                customer_id,
                "order_placed",
                now - timedelta(days=21 * k + 2),
                amount=80.0,
                discount=0.0,
            )
        )
    for k in range(12):
        events.append(_event(customer_id, "email_sent", now - timedelta(days=7 * k + 1)))
        events.append(_event(customer_id, "email_opened", now - timedelta(days=7 * k + 1)))
        events.append(_event(customer_id, "login", now - timedelta(days=3 * k + 1)))
    return events
