"""Behavioural features of one customer, computed from their raw events as of a moment.

Pure (no I/O): the online path (event ingest) and point-in-time training sets both call
:func:`compute_features`, so it is the single definition of every feature in
``churn_shared.contracts.FEATURE_NAMES``.

Definitions (only events with ``occurred_at <= as_of`` count; windows are inclusive,
``as_of - N days <= occurred_at``; durations are in days as floats):

* ``total_orders``: number of ``order_placed`` events.
* ``total_spent``: sum of their ``amount`` (missing or non-numeric → 0).
* ``avg_order_value``: ``total_spent / total_orders``, 0 without orders.
* ``days_since_last_order``: days since the latest order; without orders, ``account_age_days``.
* ``orders_last_90d`` / ``spend_last_90d``: orders and their amounts in the last 90 days.
* ``email_open_rate``: ``email_opened / email_sent``, capped at 1; 0 when nothing was sent.
* ``logins_last_30d``: ``login`` events in the last 30 days.
* ``support_tickets_last_90d``: ``support_ticket_opened`` events in the last 90 days.
* ``payment_failures_last_90d``: ``payment_failed`` events in the last 90 days.
* ``discount_usage_rate``: share of orders whose ``discount`` is > 0; 0 without orders.
* ``returns_count``: number of ``order_returned`` events.
* ``loyalty_points``: a ledger over ``loyalty_points_changed`` events in time order: an event
  with ``balance`` sets the points to it, otherwise its ``delta`` is added.
* ``account_age_days``: days since the earliest ``signup``, or since the earliest event when
  there is no signup.

A customer without any event (up to ``as_of``) has counts, sums and rates of 0, and ``None``
for ``days_since_last_order`` and ``account_age_days`` (unknown, not zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from churn_shared.contracts import FEATURE_NAMES

_DAY_SECONDS = 86_400.0
#: The only event types whose properties any feature reads (readers may skip the others').
PROPERTY_EVENT_TYPES: frozenset[str] = frozenset({"order_placed", "loyalty_points_changed"})


class EventLike(Protocol):
    """Anything with an event's type, time and properties (a schema, a row, a dataclass)."""

    @property
    def type(self) -> str: ...

    @property
    def occurred_at(self) -> datetime: ...

    @property
    def properties(self) -> Mapping[str, Any]: ...


def _number(properties: Mapping[str, Any], name: str) -> float:
    value = properties.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / _DAY_SECONDS


def compute_features(events: Sequence[EventLike], as_of: datetime) -> dict[str, float | None]:
    """The feature vector (keys exactly ``FEATURE_NAMES``, in order) of one customer's events."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    window_90 = as_of - timedelta(days=90)
    window_30 = as_of - timedelta(days=30)

    total_orders = 0
    total_spent = 0.0
    orders_90 = 0
    spend_90 = 0.0
    discounted_orders = 0
    last_order_at: datetime | None = None
    emails_sent = 0
    emails_opened = 0
    logins_30 = 0
    tickets_90 = 0
    payment_failures_90 = 0
    returns = 0
    loyalty_points = 0.0
    first_event_at: datetime | None = None
    first_signup_at: datetime | None = None

    # Stable sort: events at the same instant keep the order they were given in.
    for event in sorted(events, key=lambda e: e.occurred_at):
        at = event.occurred_at
        if at > as_of:
            break
        kind = event.type
        props = event.properties or {}
        if first_event_at is None:
            first_event_at = at
        if kind == "order_placed":
            amount = _number(props, "amount")
            total_orders += 1
            total_spent += amount
            last_order_at = at
            if _number(props, "discount") > 0:
                discounted_orders += 1
            if at >= window_90:
                orders_90 += 1
                spend_90 += amount
        elif kind == "email_sent":
            emails_sent += 1
        elif kind == "email_opened":
            emails_opened += 1
        elif kind == "login":
            if at >= window_30:
                logins_30 += 1
        elif kind == "support_ticket_opened":
            if at >= window_90:
                tickets_90 += 1
        elif kind == "payment_failed":
            if at >= window_90:
                payment_failures_90 += 1
        elif kind == "order_returned":
            returns += 1
        elif kind == "loyalty_points_changed":
            if "balance" in props and not isinstance(props["balance"], bool):
                loyalty_points = _number(props, "balance")
            else:
                loyalty_points += _number(props, "delta")
        elif kind == "signup" and first_signup_at is None:
            first_signup_at = at

    origin = first_signup_at or first_event_at
    account_age = _days(as_of - origin) if origin is not None else None
    days_since_last_order = (
        _days(as_of - last_order_at) if last_order_at is not None else account_age
    )
    features: dict[str, float | None] = {
        "total_orders": float(total_orders),
        "total_spent": total_spent,
        "avg_order_value": total_spent / total_orders if total_orders else 0.0,
        "days_since_last_order": days_since_last_order,
        "orders_last_90d": float(orders_90),
        "spend_last_90d": spend_90,
        "email_open_rate": min(emails_opened / emails_sent, 1.0) if emails_sent else 0.0,
        "logins_last_30d": float(logins_30),
        "support_tickets_last_90d": float(tickets_90),
        "payment_failures_last_90d": float(payment_failures_90),
        "discount_usage_rate": discounted_orders / total_orders if total_orders else 0.0,
        "returns_count": float(returns),
        "loyalty_points": loyalty_points,
        "account_age_days": account_age,
    }
    return {name: features[name] for name in FEATURE_NAMES}


def churned_after(events: Sequence[EventLike], cutoff: datetime, horizon: timedelta) -> int:
    """The point-in-time label: 1 when no ``order_placed`` falls in ``(cutoff, cutoff + horizon]``
    (an order exactly at the cutoff is history, one exactly at the horizon's end counts)."""
    end = cutoff + horizon
    for event in events:
        if event.type == "order_placed" and cutoff < event.occurred_at <= end:
            return 0
    return 1


def point_in_time_rows(
    events: Sequence[EventLike], cutoffs: Sequence[datetime], horizon: timedelta
) -> list[tuple[int, dict[str, float | None], int]]:
    """``(cutoff index, features, label)`` of one customer for each cutoff at or before which
    they have an event. Features are exactly :func:`compute_features` of the events up to the
    cutoff, as of the cutoff (what the online profile would have shown at that instant)."""
    ordered = sorted(events, key=lambda e: e.occurred_at)
    out: list[tuple[int, dict[str, float | None], int]] = []
    for index, cutoff in enumerate(cutoffs):
        known = [e for e in ordered if e.occurred_at <= cutoff]
        if not known:
            continue
        label = churned_after(ordered[len(known) :], cutoff, horizon)
        out.append((index, compute_features(known, cutoff), label))
    return out
