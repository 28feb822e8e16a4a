"""FeatureState (the live, incremental path) against compute_features (the reference).

Random histories arrive in random orders and batch splits, each batch at a random later time;
after every batch the state — kept the way the ingest service keeps it (advanced, or rebuilt
from the stored history when it refuses, and stored as JSON in between) — must give exactly
what compute_features gives on every event stored so far, in the order it was stored."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_customers.features import FeatureState, compute_features
from churn_shared.contracts import PROFILE_FEATURE_NAMES

T0 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = 86_400
# Seconds of the day that make ties and exact window edges likely (as_of - 90 days is at the
# same second of a day as as_of).
SECONDS = st.one_of(
    st.sampled_from([0, 1, 43_200, DAY - 1]), st.integers(min_value=0, max_value=DAY - 1)
)


@dataclass(frozen=True)
class Ev:
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


def moment(day: int, second: int) -> datetime:
    return T0 + timedelta(days=day, seconds=second)


numbers = st.one_of(
    st.integers(min_value=0, max_value=500),
    st.floats(min_value=0, max_value=1_000, allow_nan=False, allow_infinity=False),
)
signed = st.one_of(
    st.integers(min_value=-200, max_value=500),
    st.floats(min_value=-100, max_value=1_000, allow_nan=False, allow_infinity=False),
)


@st.composite
def properties(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    if kind == "order_placed":
        props: dict[str, Any] = {}
        if draw(st.booleans()):
            props["amount"] = draw(numbers)
        if draw(st.booleans()):
            props["discount"] = draw(st.sampled_from([0, 0.0, 5, 2.5]))
        return props
    if kind == "loyalty_points_changed":
        shape = draw(st.sampled_from(["delta", "balance", "both", "bool-balance", "none"]))
        if shape == "delta":
            return {"delta": draw(signed)}
        if shape == "balance":
            return {"balance": draw(signed)}
        if shape == "both":
            return {"balance": draw(signed), "delta": draw(signed)}
        if shape == "bool-balance":  # not a balance: its delta counts
            return {"balance": True, "delta": draw(signed)}
        return {}
    return {}


KINDS = [
    "order_placed",
    "email_sent",
    "email_opened",
    "login",
    "support_ticket_opened",
    "payment_failed",
    "order_returned",
    "loyalty_points_changed",
    "signup",
    "page_viewed",
]


@st.composite
def event(draw: st.DrawFn, kinds: Sequence[str] = KINDS, max_day: int = 240) -> Ev:
    kind = draw(st.sampled_from(kinds))
    # Few distinct days, so same-instant ties and same-day window edges are common.
    at = moment(draw(st.integers(min_value=0, max_value=max_day)), draw(SECONDS))
    return Ev(kind, at, draw(properties(kind)))


@st.composite
def arrivals(
    draw: st.DrawFn, kinds: Sequence[str] = KINDS, future: bool = True
) -> list[tuple[list[Ev], datetime]]:
    """Events in a random arrival order, split into random batches, each arriving at a time
    no earlier than the previous one (with ``future=False``, after every event)."""
    events = draw(st.lists(event(kinds), min_size=1, max_size=40))
    order = draw(st.permutations(events))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=6)))
    batches = [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)], strict=True)]
    latest = max(e.occurred_at for e in events)
    start_day = (latest - T0).days + 1 if not future else 0
    out = []
    day = start_day
    for batch in batches:
        day += draw(st.integers(0, 120))
        at = moment(day, draw(SECONDS))
        if out and at < out[-1][1]:
            at = out[-1][1]
        out.append((batch, at))
    # One more "batch" with nothing new: the clock ages the windows.
    out.append(([], moment(day + draw(st.integers(0, 120)), draw(SECONDS))))
    if out[-1][1] < out[-2][1]:
        out[-1] = ([], out[-2][1])
    return out


def assert_same(actual: dict[str, float | None], expected: dict[str, float | None]) -> None:
    assert list(actual) == list(PROFILE_FEATURE_NAMES)
    for name in PROFILE_FEATURE_NAMES:
        want = expected[name]
        if want is None:
            assert actual[name] is None, name
        else:
            assert actual[name] == pytest.approx(want, rel=1e-9, abs=1e-6), name


def edge_events(state: FeatureState, stored: Sequence[Ev]) -> list[Ev]:
    """What the repository reads for the state: the stored events in its edge ranges."""
    ranges = state.edge_ranges()
    return [e for e in stored if any(lo <= e.occurred_at < hi for lo, hi in ranges)]


def replay(batches: list[tuple[list[Ev], datetime]]) -> int:
    """Feed the batches as the ingest service does, checking after each; the rebuilds."""
    stored: list[Ev] = []
    state: FeatureState | None = None
    rebuilds = 0
    for batch, as_of in batches:
        stored.extend(batch)
        if state is None or not state.advance(batch, as_of):
            rebuilds += state is not None
            state = FeatureState.from_events(stored, as_of)
        assert_same(state.features(edge_events(state, stored)), compute_features(stored, as_of))
        # Stored between requests as JSON.
        state = FeatureState.from_json(json.loads(json.dumps(state.to_json())))
        assert state is not None
    return rebuilds


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals())
def test_state_after_increments_equals_compute_features_on_the_full_history(
    batches: list[tuple[list[Ev], datetime]],
) -> None:
    replay(batches)


#: Mostly orders, so the order intervals and the order and spend trends are mostly defined.
ORDER_HEAVY = ["order_placed"] * 4 + ["login", "email_opened", "signup"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals(kinds=ORDER_HEAVY))
def test_order_history_features_after_increments_equal_compute_features(
    batches: list[tuple[list[Ev], datetime]],
) -> None:
    """The history features (intervals, their variation, trends, last activity) on histories
    where they are mostly defined; late orders force rebuilds, which stay exact."""
    replay(batches)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrivals(kinds=[k for k in KINDS if k != "loyalty_points_changed"], future=False))
def test_late_and_out_of_order_events_never_need_the_history(
    batches: list[tuple[list[Ev], datetime]],
) -> None:
    """Without loyalty events and without events dated after their arrival, every batch is an
    increment — the history is read only for the first one — except a batch bringing an order
    dated before an order already applied (the intervals between orders change)."""
    late_orders = 0
    latest_order: datetime | None = None
    for index, (batch, _) in enumerate(batches):
        orders = [e.occurred_at for e in batch if e.type == "order_placed"]
        if index and orders and latest_order is not None and min(orders) < latest_order:
            late_orders += 1
        latest_order = max([*orders, *([latest_order] if latest_order else [])], default=None)
    assert replay(batches) == late_orders


def test_orders_in_time_order_never_need_the_history() -> None:
    days = [3, 10, 10, 40, 41, 200]
    state = FeatureState.from_events([], moment(0, 0))
    stored: list[Ev] = []
    for day in days:
        order = Ev("order_placed", moment(day, 5), {"amount": day})
        stored.append(order)
        assert state.advance([order], moment(day, 10))
    now = moment(200, 10)
    assert_same(state.features(edge_events(state, stored)), compute_features(stored, now))
    assert not state.advance([Ev("order_placed", moment(100, 0))], now)  # between two orders


def loyalty(day: int, **props: float) -> Ev:
    return Ev("loyalty_points_changed", moment(day, 0), dict(props))


@pytest.mark.parametrize(
    ("late", "refused", "points"),
    [
        (loyalty(15, delta=7), False, 100 + 5 + 7),  # after the latest balance: it adds
        (loyalty(5, delta=7), False, 100 + 5),  # before the latest balance: overridden
        (loyalty(5, balance=1), False, 100 + 5),  # before the latest balance: overridden
        (loyalty(10, balance=1), True, 1 + 5),  # same instant, stored later: it is the balance
        (loyalty(15, balance=1), True, 1 + 5),  # between balance and delta: needs the deltas
        (loyalty(25, balance=1), False, 1),  # after everything: in order
    ],
)
def test_a_late_loyalty_event_is_applied_or_refused(late: Ev, refused: bool, points: float) -> None:
    history = [loyalty(1, delta=50), loyalty(10, balance=100), loyalty(20, delta=5)]
    as_of = moment(30, 0)
    state = FeatureState.from_events(history, as_of)
    applied = state.advance([late], as_of)
    assert applied is not refused
    if applied:
        assert state.features()["loyalty_points"] == points
    assert compute_features([*history, late], as_of)["loyalty_points"] == points


def test_an_event_dated_in_the_future_waits_then_forces_a_rebuild_when_due() -> None:
    now = moment(10, 0)
    ahead = Ev("login", moment(10, 60))
    state = FeatureState.from_events([Ev("signup", moment(1, 0))], now)
    assert state.advance([ahead], now)
    assert state.features()["logins_last_30d"] == 0
    assert state.advance([], moment(10, 59))  # not due yet
    assert not state.advance([], moment(10, 60))  # due: the caller rebuilds


def test_only_days_with_windowed_events_on_a_window_edge_are_read() -> None:
    as_of = moment(200, 43_200)
    state = FeatureState.from_events(
        [Ev("login", moment(150, 10)), Ev("order_placed", moment(200, 1), {"amount": 3})], as_of
    )
    assert state.edge_ranges() == []  # no windowed event 30 or 90 days back
    state = FeatureState.from_events([Ev("login", moment(170, 50_000))], as_of)
    assert state.edge_ranges() == [(moment(170, 0), moment(171, 0))]
    unread = FeatureState.from_json(state.to_json())
    assert unread is not None
    assert unread.features()["logins_last_30d"] == 0  # without the edge day's events: wrong
    assert (
        state.features(edge_events(state, [Ev("login", moment(170, 50_000))]))["logins_last_30d"]
        == 1
    )


def test_an_edge_day_is_read_once_then_kept_complete_until_it_is_no_edge() -> None:
    """The edge days' events, once given, stay in the state (and its JSON): later ingests the
    same day read nothing, a late event on that day counts, and the next day's edges are asked
    for again."""
    stored = [Ev("login", moment(170, 50_000)), Ev("login", moment(170, 60_000))]
    as_of = moment(200, 43_200)
    state = FeatureState.from_events(stored, as_of)
    assert state.features(edge_events(state, stored))["logins_last_30d"] == 2
    state = FeatureState.from_json(json.loads(json.dumps(state.to_json())))
    assert state is not None
    assert state.edge_ranges() == []  # already read
    late = Ev("login", moment(170, 55_000))
    stored.append(late)
    assert state.advance([late], moment(200, 50_000))
    assert state.edge_ranges() == []
    assert state.features()["logins_last_30d"] == 3
    assert_same(state.features(), compute_features(stored, moment(200, 50_000)))
    # The window's start passes the first two; the day is still the edge: nothing to read.
    assert state.advance([], moment(200, 56_000))
    assert state.features()["logins_last_30d"] == 1
    # The next day: day 170 leaves the window, day 171 (no events) is the new edge.
    assert state.advance([], moment(201, 0))
    assert state.edges == {}
    assert state.features()["logins_last_30d"] == 0


def test_a_stored_state_of_another_version_is_not_used() -> None:
    data = FeatureState.from_events([Ev("signup", moment(1, 0))], moment(2, 0)).to_json()
    assert FeatureState.from_json(data) is not None
    assert FeatureState.from_json({**data, "v": data["v"] + 1}) is None
    assert FeatureState.from_json(None) is None
    assert FeatureState.from_json({**data, "days": None}) is None  # unreadable: rebuilt
    assert FeatureState.from_json({**data, "sums": [1.0]}) is None
    assert FeatureState.from_json({**data, "as_of": "yesterday"}) is None
    del data["total_orders"]
    assert FeatureState.from_json(data) is None
