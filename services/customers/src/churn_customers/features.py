"""Behavioural features of one customer, computed from their raw events as of a moment.

Pure (no I/O): the online path (event ingest) and point-in-time training sets both call
:func:`compute_features`, so it is the single definition of every feature in
``churn_shared.contracts.PROFILE_FEATURE_NAMES`` (``FEATURE_NAMES``, then
``HISTORY_FEATURE_NAMES``).

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

Of the raw order and activity history (``HISTORY_FEATURE_NAMES``; ``None`` where undefined):

* ``order_interval_mean_days``: mean days between consecutive orders, ``(last order - first
  order) / (total_orders - 1)``; ``None`` with fewer than two orders.
* ``order_interval_cv``: coefficient of variation of those intervals (their population standard
  deviation over their mean); ``None`` with fewer than two orders or a mean of 0.
* ``order_recency_ratio``: ``days_since_last_order / max(order_interval_mean_days, 1)``, how
  long the customer has been away relative to their own rhythm.
* ``order_rate_trend_30d``: the order rate (orders per day) of the last 30 days against that
  of the 90 days before them, as ``(recent - before) / (recent + before)`` in ``[-1, 1]``.
  The earlier window is cut to the account's age (``account_age_days - 30`` days when
  shorter); ``None`` when it is empty or neither window has an order.
* ``order_rate_trend_90d``: the same for the last 90 days against the 180 before them.
* ``spend_trend_90d``: the same for the order amounts of the last 90 days against the 180
  before them (monetary trend); ``None`` when neither sum is positive.
* ``days_since_last_activity``: days since the latest non-order activity (``login``,
  ``email_opened``, ``support_ticket_opened``); ``None`` without any.

(Tenure-normalised frequency and the textbook BG/NBD expectation come from the profile at
training time, ``churn_prediction.training.derived``, and are not repeated here.)

A customer without any event (up to ``as_of``) has counts, sums and rates of 0, and ``None``
for ``days_since_last_order`` and ``account_age_days`` (unknown, not zero).

Incremental features (the live path)
------------------------------------

Live ingest must not cost more for a customer with years of history, so it keeps a
:class:`FeatureState` per customer: all-time counts and sums, first/last times, the loyalty
ledger, the first order and the sum of squared intervals between orders, and per-UTC-day sums
of the windowed events (``_COLUMNS``: what the ``_WINDOW_SUMS`` read of a day) for the longest
window (the last 270 days), in one flat array of doubles.
:meth:`FeatureState.advance` applies new events and moves the state to a later ``as_of`` in
O(new events + days kept); :meth:`FeatureState.features` derives the vector. A window's first
day is only partly inside it (``as_of - 90 days`` falls inside a day), so the events of that one
day (:meth:`FeatureState.edge_ranges`) are read exactly; a day without windowed events needs
no read. :func:`compute_features` stays the reference definition (point-in-time training sets
use it), and Hypothesis proves ``state.features() == compute_features(all events)`` over random
histories, arrival orders, batch splits and times (``tests/unit/test_incremental_features.py``).

``advance`` returns ``False`` (the caller then rebuilds the state with
:meth:`FeatureState.from_events` from the customer's whole history, for that customer only)
when an increment cannot be exact:

* a ``loyalty_points_changed`` event with ``balance`` arrives before the latest loyalty event
  applied but not before the latest balance (it would reset the points and be followed by deltas
  the state no longer has). Late deltas, late balances before the latest balance, and every
  other late or out-of-order event except an order are exact increments;
* an ``order_placed`` event arrives dated before the latest order applied (the state keeps the
  sum of squared intervals between consecutive orders, not the order times);
* an event stored for the future (``occurred_at`` after the ``as_of`` it arrived at) falls due;
* ``as_of`` goes back in time, or the stored state is from another :data:`STATE_VERSION`.

Adding a feature (one place each, here): define it in :func:`compute_features`; give
:class:`FeatureState` what it needs — an all-time aggregate (a field, updated in ``_apply``) or a
windowed sum (a row in ``_WINDOW_SUMS``); derive it in :meth:`FeatureState.features`; bump
:data:`STATE_VERSION` (stored states of older versions are rebuilt once from history); add it to
the state's JSON (``to_json``/``from_json``). The property test then checks it.
"""

from __future__ import annotations

import binascii
import bisect
import math
import sys
import zlib
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from churn_shared.contracts import PROFILE_FEATURE_NAMES

_DAY_SECONDS = 86_400.0
#: The only event types whose properties any feature reads (readers may skip the others').
PROPERTY_EVENT_TYPES: frozenset[str] = frozenset({"order_placed", "loyalty_points_changed"})
#: The non-order activity ``days_since_last_activity`` counts.
ACTIVITY_EVENT_TYPES: frozenset[str] = frozenset({"login", "email_opened", "support_ticket_opened"})


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


def _trend(
    recent: float, recent_days: int, total: float, before_days: int, age: float | None
) -> float | None:
    """``(r - b) / (r + b)`` of the rate ``r`` of the last ``recent_days`` (sum ``recent``) and
    the rate ``b`` of the ``before_days`` before them (``total - recent``, ``total`` being the
    sum of both windows), the earlier window cut to the account's age."""
    if age is None:
        return None
    span = min(float(before_days), age - recent_days)
    if span <= 0:
        return None
    recent_rate = recent / recent_days
    before_rate = max(total - recent, 0.0) / span
    both = recent_rate + before_rate
    return (recent_rate - before_rate) / both if both > 0 else None


def _history_features(
    as_of: datetime,
    *,
    total_orders: int,
    first_order_at: datetime | None,
    last_order_at: datetime | None,
    gap_squares: float,
    days_since_last_order: float | None,
    account_age: float | None,
    sums: Mapping[str, float],
    last_activity_at: datetime | None,
) -> dict[str, float | None]:
    """``HISTORY_FEATURE_NAMES`` from what both paths keep (one definition for both)."""
    gaps = total_orders - 1
    mean: float | None = None
    cv: float | None = None
    ratio: float | None = None
    if gaps >= 1 and first_order_at is not None and last_order_at is not None:
        mean = _days(last_order_at - first_order_at) / gaps
        if mean > 0:
            variance = max(gap_squares / gaps - mean * mean, 0.0)
            cv = math.sqrt(variance) / mean
        if days_since_last_order is not None:
            ratio = days_since_last_order / max(mean, 1.0)
    return {
        "order_interval_mean_days": mean,
        "order_interval_cv": cv,
        "order_recency_ratio": ratio,
        "order_rate_trend_30d": _trend(sums["orders_30"], 30, sums["orders_120"], 90, account_age),
        "order_rate_trend_90d": _trend(sums["orders_90"], 90, sums["orders_270"], 180, account_age),
        "spend_trend_90d": _trend(sums["spend_90"], 90, sums["spend_270"], 180, account_age),
        "days_since_last_activity": (
            _days(as_of - last_activity_at) if last_activity_at is not None else None
        ),
    }


def compute_features(events: Sequence[EventLike], as_of: datetime) -> dict[str, float | None]:
    """The feature vector (keys exactly ``PROFILE_FEATURE_NAMES``, in order) of one customer's
    events."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    window_90 = as_of - timedelta(days=90)
    window_30 = as_of - timedelta(days=30)
    window_120 = as_of - timedelta(days=120)
    window_270 = as_of - timedelta(days=270)

    total_orders = 0
    total_spent = 0.0
    orders_90 = 0
    spend_90 = 0.0
    orders_30 = 0
    orders_120 = 0
    orders_270 = 0
    spend_270 = 0.0
    first_order_at: datetime | None = None
    gap_squares = 0.0
    last_activity_at: datetime | None = None
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
        if kind in ACTIVITY_EVENT_TYPES:
            last_activity_at = at
        if kind == "order_placed":
            amount = _number(props, "amount")
            total_orders += 1
            total_spent += amount
            if last_order_at is None:
                first_order_at = at
            else:
                gap = _days(at - last_order_at)
                gap_squares += gap * gap
            last_order_at = at
            if _number(props, "discount") > 0:
                discounted_orders += 1
            if at >= window_90:
                orders_90 += 1
                spend_90 += amount
            if at >= window_30:
                orders_30 += 1
            if at >= window_120:
                orders_120 += 1
            if at >= window_270:
                orders_270 += 1
                spend_270 += amount
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
    features |= _history_features(
        as_of,
        total_orders=total_orders,
        first_order_at=first_order_at,
        last_order_at=last_order_at,
        gap_squares=gap_squares,
        days_since_last_order=days_since_last_order,
        account_age=account_age,
        sums={
            "orders_30": float(orders_30),
            "orders_90": float(orders_90),
            "orders_120": float(orders_120),
            "orders_270": float(orders_270),
            "spend_90": spend_90,
            "spend_270": spend_270,
        },
        last_activity_at=last_activity_at,
    )
    return {name: features[name] for name in PROFILE_FEATURE_NAMES}


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


# --------------------------------------------------------------------------- incremental

#: Version of :class:`FeatureState`'s stored form; a stored state of another one is rebuilt.
STATE_VERSION = 4
_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _one(_: Mapping[str, Any]) -> float:
    return 1.0


@dataclass(frozen=True, slots=True)
class WindowSum:
    """A sum over the events of one type in the last ``days`` days (inclusive)."""

    name: str
    event_type: str
    days: int
    value: Callable[[Mapping[str, Any]], float] = _one


def _amount(props: Mapping[str, Any]) -> float:
    return _number(props, "amount")


#: Every windowed sum the features use.
_WINDOW_SUMS: tuple[WindowSum, ...] = (
    WindowSum("orders_90", "order_placed", 90),
    WindowSum("spend_90", "order_placed", 90, _amount),
    WindowSum("logins_30", "login", 30),
    WindowSum("tickets_90", "support_ticket_opened", 90),
    WindowSum("payment_failures_90", "payment_failed", 90),
    WindowSum("orders_30", "order_placed", 30),
    WindowSum("orders_120", "order_placed", 120),
    WindowSum("orders_270", "order_placed", 270),
    WindowSum("spend_270", "order_placed", 270, _amount),
)
#: Event types any windowed sum reads, and the window lengths in days.
WINDOWED_EVENT_TYPES: frozenset[str] = frozenset(w.event_type for w in _WINDOW_SUMS)
_WINDOW_DAYS: tuple[int, ...] = tuple(sorted({w.days for w in _WINDOW_SUMS}))
_LONGEST = timedelta(days=max(_WINDOW_DAYS))
#: What a kept day sums, whatever the window: ``(event type, value)`` of each windowed sum,
#: once (the 30, 90, 120 and 270-day order counts all read the day's order count).
_COLUMNS: tuple[tuple[str, Callable[[Mapping[str, Any]], float]], ...] = tuple(
    dict.fromkeys((w.event_type, w.value) for w in _WINDOW_SUMS)
)
#: Each windowed sum's slot in a day: slot 0 counts the day's windowed events of any type,
#: slot ``i + 1`` holds ``_COLUMNS[i]``.
_SLOT: dict[str, int] = {w.name: _COLUMNS.index((w.event_type, w.value)) + 1 for w in _WINDOW_SUMS}
_WIDTH = len(_COLUMNS) + 1
_EMPTY_DAY = array("d", [0.0] * _WIDTH)


def _day(at: datetime) -> int:
    return (at - _EPOCH) // _DAY


def _day_start(day: int) -> datetime:
    return _EPOCH + day * _DAY


def _is_balance(props: Mapping[str, Any]) -> bool:
    return "balance" in props and not isinstance(props["balance"], bool)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def _parse(text: Any) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    if moment.tzinfo is None:
        raise ValueError("naive datetime in a stored feature state")
    return moment


@dataclass(slots=True)
class FeatureState:
    """What a customer's features need of their history, kept up to date event by event.

    Holds the events that occurred at or before :attr:`as_of` (stored later-dated ones are
    *pending*, their earliest time in :attr:`pending_from`). See the module docstring for when
    :meth:`advance` refuses and the caller rebuilds the state from history."""

    as_of: datetime | None = None
    pending_from: datetime | None = None
    first_event_at: datetime | None = None
    first_signup_at: datetime | None = None
    total_orders: int = 0
    total_spent: float = 0.0
    discounted_orders: int = 0
    last_order_at: datetime | None = None
    #: The first order, and the sum of squared intervals (days) between consecutive orders.
    first_order_at: datetime | None = None
    gap_squares: float = 0.0
    #: The latest non-order activity (``ACTIVITY_EVENT_TYPES``).
    last_activity_at: datetime | None = None
    emails_sent: int = 0
    emails_opened: int = 0
    returns: int = 0
    loyalty_points: float = 0.0
    #: Time of the latest loyalty event applied, and of the latest one that set a balance.
    loyalty_last_at: datetime | None = None
    loyalty_balance_at: datetime | None = None
    #: The UTC day numbers with windowed events that can still be inside a window (from the
    #: longest window's first day on), ascending; ``sums[i * _WIDTH : (i + 1) * _WIDTH]`` is
    #: day ``days[i]``'s ``[windowed events, *_COLUMNS]``. Columns in one flat C array,
    #: not a list per day: a long history's state holds a day for most of the 270 kept, it is
    #: decoded on every ingest, and hundreds of small lists per customer cost their
    #: allocation and, above all, the garbage collector's passes over them.
    days: list[int] = field(default_factory=list)
    sums: array[float] = field(default_factory=lambda: array("d"))
    #: The windowed events of the window-edge days read so far (:meth:`edge_ranges`), as
    #: ``day → [(microseconds since the epoch, slot, value), ...]``: read from the store once,
    #: kept complete by :meth:`advance` (a late event on such a day is added), dropped when the
    #: day stops being an edge. A customer's ingests after their first of a day read nothing.
    edges: dict[int, list[tuple[int, int, float]]] = field(default_factory=dict)

    @classmethod
    def from_events(cls, events: Iterable[EventLike], as_of: datetime) -> FeatureState:
        """The state of a whole history (in stored order: ties keep it) as of ``as_of``."""
        state = cls()
        applied = state.advance(events, as_of)
        assert applied, "a state built from nothing applies any history"
        return state

    def advance(self, new_events: Iterable[EventLike], as_of: datetime) -> bool:
        """Apply events stored after every event already applied (in the order they were
        stored), then move to ``as_of``. ``False``: the result would not be exact; the state
        is then unusable and must be rebuilt with :meth:`from_events`."""
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        if self.as_of is not None and as_of < self.as_of:
            return False
        if self.pending_from is not None and self.pending_from <= as_of:
            return False
        keep_from = _day(as_of - _LONGEST)
        # Stable: events at the same instant keep the stored order.
        for event in sorted(new_events, key=lambda e: e.occurred_at):
            at = event.occurred_at
            if at > as_of:
                if self.pending_from is None or at < self.pending_from:
                    self.pending_from = at
            elif not self._apply(event.type, at, event.properties or {}, keep_from):
                return False
        self.as_of = as_of
        cut = bisect.bisect_left(self.days, keep_from)
        if cut:
            del self.days[:cut]
            del self.sums[: cut * _WIDTH]
        if self.edges:
            current = {_day(as_of - timedelta(days=days)) for days in _WINDOW_DAYS}
            self.edges = {day: kept for day, kept in self.edges.items() if day in current}
        return True

    def _apply(self, kind: str, at: datetime, props: Mapping[str, Any], keep_from: int) -> bool:
        if self.first_event_at is None or at < self.first_event_at:
            self.first_event_at = at
        if kind in ACTIVITY_EVENT_TYPES and (
            self.last_activity_at is None or at > self.last_activity_at
        ):
            self.last_activity_at = at
        if kind == "order_placed":
            last = self.last_order_at
            if last is None:
                self.first_order_at = at
            elif at < last:
                return False  # between orders already applied: the intervals change
            else:
                gap = _days(at - last)
                self.gap_squares += gap * gap
            self.last_order_at = at
            self.total_orders += 1
            self.total_spent += _number(props, "amount")
            if _number(props, "discount") > 0:
                self.discounted_orders += 1
        elif kind == "email_sent":
            self.emails_sent += 1
        elif kind == "email_opened":
            self.emails_opened += 1
        elif kind == "order_returned":
            self.returns += 1
        elif kind == "signup":
            if self.first_signup_at is None or at < self.first_signup_at:
                self.first_signup_at = at
        elif kind == "loyalty_points_changed" and not self._apply_loyalty(at, props):
            return False
        if kind not in WINDOWED_EVENT_TYPES:
            return True
        day = _day(at)
        if day in self.edges:
            self.edges[day].extend(_edge_entries(kind, at, props))
        if day >= keep_from:
            base, sums = self._day_offset(day), self.sums
            sums[base] += 1
            for slot, (event_type, value) in enumerate(_COLUMNS, start=1):
                if event_type == kind:
                    sums[base + slot] += value(props)
        return True

    def _day_offset(self, day: int) -> int:
        """Where ``day``'s slots start in :attr:`sums` (a day not kept yet is added, empty)."""
        days = self.days
        if days and days[-1] == day:  # the usual case: another event today
            return (len(days) - 1) * _WIDTH
        index = bisect.bisect_left(days, day)
        if index == len(days) or days[index] != day:
            days.insert(index, day)
            self.sums[index * _WIDTH : index * _WIDTH] = _EMPTY_DAY
        return index * _WIDTH

    def _apply_loyalty(self, at: datetime, props: Mapping[str, Any]) -> bool:
        # The ledger in time order: a balance sets the points, a delta adds. An event stored
        # later sorts after every stored event of the same instant.
        balance = _is_balance(props)
        if self.loyalty_last_at is None or at >= self.loyalty_last_at:
            self.loyalty_last_at = at
            if balance:
                self.loyalty_points = _number(props, "balance")
                self.loyalty_balance_at = at
            else:
                self.loyalty_points += _number(props, "delta")
            return True
        if self.loyalty_balance_at is not None and at < self.loyalty_balance_at:
            return True  # a later balance overrides it
        if balance:
            return False  # resets the points before deltas this state no longer lists
        self.loyalty_points += _number(props, "delta")  # after the latest balance: it adds
        return True

    def edge_ranges(self) -> list[tuple[datetime, datetime]]:
        """``[start, end)`` of each window's first day (partly inside the window) on which this
        customer has windowed events not read yet: :meth:`features` needs those days' events."""
        return [(_day_start(day), _day_start(day + 1)) for day in self._unread_edges()]

    def _unread_edges(self) -> list[int]:
        if self.as_of is None:
            return []
        unread = []
        for days in _WINDOW_DAYS:
            edge = _day(self.as_of - timedelta(days=days))
            index = bisect.bisect_left(self.days, edge)
            if (
                edge not in self.edges
                and index < len(self.days)
                and self.days[index] == edge
                and self.sums[index * _WIDTH] > 0
            ):
                unread.append(edge)
        return unread

    def features(self, edge_events: Iterable[EventLike] = ()) -> dict[str, float | None]:
        """The feature vector as of :attr:`as_of`, exactly :func:`compute_features` of every
        event applied. ``edge_events``: the customer's stored events in :meth:`edge_ranges`
        (any others given are ignored); the state keeps them (:attr:`edges`)."""
        as_of = self.as_of
        if as_of is None:
            raise ValueError("the state has not been advanced to a time yet")
        unread = self._unread_edges()
        for day in unread:
            self.edges[day] = []
        if unread:
            for event in edge_events:
                day = _day(event.occurred_at)
                if day in unread and event.type in WINDOWED_EVENT_TYPES:
                    self.edges[day].extend(
                        _edge_entries(event.type, event.occurred_at, event.properties or {})
                    )
        sums: dict[str, float] = {}
        starts = {days: as_of - timedelta(days=days) for days in _WINDOW_DAYS}
        edges = {days: _day(start) for days, start in starts.items()}
        # A window's sum is its column's tail after the window's edge day (found by
        # bisection), sliced with a stride in C: one ``sum`` per window, not Python per day.
        for window in _WINDOW_SUMS:
            first = bisect.bisect_right(self.days, edges[window.days])
            sums[window.name] = float(sum(self.sums[first * _WIDTH + _SLOT[window.name] :: _WIDTH]))
        as_of_us = _micros(as_of)
        for window in _WINDOW_SUMS:
            slot, start_us = _SLOT[window.name], _micros(starts[window.days])
            for at_us, entry_slot, value in self.edges.get(edges[window.days], ()):
                if entry_slot == slot and start_us <= at_us <= as_of_us:
                    sums[window.name] += value

        origin = self.first_signup_at or self.first_event_at
        account_age = _days(as_of - origin) if origin is not None else None
        last_order = self.last_order_at
        orders = self.total_orders
        since_order = _days(as_of - last_order) if last_order is not None else account_age
        features: dict[str, float | None] = {
            "total_orders": float(orders),
            "total_spent": self.total_spent,
            "avg_order_value": self.total_spent / orders if orders else 0.0,
            "days_since_last_order": since_order,
            "orders_last_90d": sums["orders_90"],
            "spend_last_90d": sums["spend_90"],
            "email_open_rate": (
                min(self.emails_opened / self.emails_sent, 1.0) if self.emails_sent else 0.0
            ),
            "logins_last_30d": sums["logins_30"],
            "support_tickets_last_90d": sums["tickets_90"],
            "payment_failures_last_90d": sums["payment_failures_90"],
            "discount_usage_rate": self.discounted_orders / orders if orders else 0.0,
            "returns_count": float(self.returns),
            "loyalty_points": self.loyalty_points,
            "account_age_days": account_age,
        }
        features |= _history_features(
            as_of,
            total_orders=orders,
            first_order_at=self.first_order_at,
            last_order_at=last_order,
            gap_squares=self.gap_squares,
            days_since_last_order=since_order,
            account_age=account_age,
            sums=sums,
            last_activity_at=self.last_activity_at,
        )
        return {name: features[name] for name in PROFILE_FEATURE_NAMES}

    _TIMES = (
        "as_of",
        "pending_from",
        "first_event_at",
        "first_signup_at",
        "last_order_at",
        "loyalty_last_at",
        "loyalty_balance_at",
        "first_order_at",
        "last_activity_at",
    )
    _NUMBERS = (
        "total_orders",
        "total_spent",
        "discounted_orders",
        "emails_sent",
        "emails_opened",
        "returns",
        "loyalty_points",
        "gap_squares",
    )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (see :meth:`from_json`)."""
        out: dict[str, Any] = {"v": STATE_VERSION}
        out.update({name: _iso(getattr(self, name)) for name in self._TIMES})
        out.update({name: getattr(self, name) for name in self._NUMBERS})
        # The days as a list, their slots (one day after another) as packed doubles: a
        # thousand floats written and parsed as JSON numbers were most of an ingest's cost for
        # a customer with a long history.
        out["days"] = list(self.days)
        out["sums"] = _pack(self.sums)
        out["edge_days"] = sorted(self.edges)
        out["edge_events"] = [
            [day, *entry] for day in out["edge_days"] for entry in self.edges[day]
        ]
        return out

    @classmethod
    def from_json(cls, data: Any) -> FeatureState | None:
        """The state stored by :meth:`to_json`, or ``None`` when there is none, it is of
        another :data:`STATE_VERSION` or it cannot be read (rebuild it from history)."""
        if not isinstance(data, dict) or data.get("v") != STATE_VERSION:
            return None
        state = cls()
        try:
            for name in cls._TIMES:
                setattr(state, name, _parse(data.get(name)))
            for name in cls._NUMBERS:
                kind = type(getattr(state, name))
                setattr(state, name, kind(data[name]))
            days, sums = list(map(int, data["days"])), _unpack(data["sums"])
            # Strictly ascending days (checked in C), one day's slots each.
            if len(sums) != _WIDTH * len(days) or days != sorted(set(days)):
                return None
            state.days, state.sums = days, sums
            state.edges = {int(day): [] for day in data["edge_days"]}
            for day, at_us, slot, value in data["edge_events"]:
                state.edges[day].append((int(at_us), int(slot), float(value)))
        except (KeyError, TypeError, ValueError, AttributeError, zlib.error):
            return None
        return state


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // _MICROSECOND


def _edge_entries(
    kind: str, at: datetime, props: Mapping[str, Any]
) -> list[tuple[int, int, float]]:
    """What an edge day keeps of one of its events: its time and each column it adds to."""
    at_us = _micros(at)
    return [
        (at_us, slot, value(props))
        for slot, (event_type, value) in enumerate(_COLUMNS, start=1)
        if event_type == kind
    ]


def _pack(values: array[float]) -> str:
    """Doubles as text for a JSON document: little-endian, deflated (most slots are 0: a long
    history's 6 KB of base64 become about 0.8 KB; on MySQL the driver's escaping of the longer
    text cost more than the deflating), base64."""
    if sys.byteorder != "little":
        values = array("d", values)
        values.byteswap()
    return binascii.b2a_base64(zlib.compress(values.tobytes(), 1), newline=False).decode("ascii")


def _unpack(text: str) -> array[float]:
    """What :func:`_pack` made (``ValueError`` or ``zlib.error`` if it did not make it)."""
    values = array("d")
    values.frombytes(zlib.decompress(binascii.a2b_base64(text, strict_mode=True)))
    if sys.byteorder != "little":
        values.byteswap()
    return values
