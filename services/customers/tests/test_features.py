"""compute_features: every feature against hand-computed values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from churn_customers.features import compute_features
from churn_customers.schemas import EventIn
from churn_shared.contracts import HISTORY_FEATURE_NAMES, PROFILE_FEATURE_NAMES

AS_OF = datetime(2024, 6, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Ev:
    type: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def history() -> list[Ev]:
    """A customer's history; deliberately not in time order."""
    return [
        Ev("loyalty_points_changed", at(2024, 5, 1), {"delta": 20}),
        Ev("order_placed", at(2024, 6, 29, 12), {"amount": 30.5, "discount": 0}),
        Ev("signup", at(2024, 1, 1)),  # 181 days before AS_OF (2024 is a leap year)
        Ev("order_placed", at(2024, 3, 1), {"amount": 100, "discount": 10}),  # outside 90d
        Ev("order_placed", at(2024, 6, 20), {"amount": 50}),
        Ev("order_placed", at(2024, 7, 5), {"amount": 1000, "discount": 5}),  # after AS_OF
        Ev("order_returned", at(2024, 6, 25), {"amount": 50}),
        Ev("email_sent", at(2024, 6, 1)),
        Ev("email_sent", at(2024, 6, 2)),
        Ev("email_sent", at(2024, 6, 3)),
        Ev("email_sent", at(2024, 6, 4)),
        Ev("email_opened", at(2024, 6, 2)),
        Ev("email_opened", at(2024, 6, 4)),
        Ev("login", at(2024, 5, 31)),  # exactly 30 days: inside (inclusive)
        Ev("login", at(2024, 5, 30)),  # 31 days: outside
        Ev("login", at(2024, 6, 29)),
        Ev("support_ticket_opened", at(2024, 4, 1)),  # exactly 90 days: inside
        Ev("support_ticket_opened", at(2024, 3, 31)),  # 91 days: outside
        Ev("payment_failed", at(2024, 6, 1), {"amount": 12}),
        Ev("payment_failed", at(2024, 1, 15)),  # outside 90d
        Ev("loyalty_points_changed", at(2024, 2, 1), {"delta": 100}),
        Ev("loyalty_points_changed", at(2024, 3, 1), {"delta": 50}),
        Ev("loyalty_points_changed", at(2024, 4, 1), {"delta": 5, "balance": 80}),
    ]


def test_every_feature_matches_the_hand_computed_value() -> None:
    features = compute_features(history(), AS_OF)

    assert features == {
        "total_orders": 3.0,
        "total_spent": 180.5,
        "avg_order_value": pytest.approx(180.5 / 3),
        "days_since_last_order": pytest.approx(0.5),
        "orders_last_90d": 2.0,
        "spend_last_90d": 80.5,
        "email_open_rate": 0.5,
        "logins_last_30d": 2.0,
        "support_tickets_last_90d": 1.0,
        "payment_failures_last_90d": 1.0,
        "discount_usage_rate": pytest.approx(1 / 3),
        "returns_count": 1.0,
        "loyalty_points": 100.0,  # 100 + 50, then balance 80, then + 20
        "account_age_days": 181.0,
        # Orders on Mar 1, Jun 20 and Jun 29 12:00: intervals of 111 and 9.5 days.
        "order_interval_mean_days": pytest.approx(60.25),
        "order_interval_cv": pytest.approx(50.75 / 60.25),
        "order_recency_ratio": pytest.approx(0.5 / 60.25),
        # Two orders in the last 30 days, none in the 90 before them.
        "order_rate_trend_30d": 1.0,
        # Two in the last 90 days against one in the 91 before them (the account is 181 days
        # old, so the earlier window is cut from 180 days to 91).
        "order_rate_trend_90d": pytest.approx((2 / 90 - 1 / 91) / (2 / 90 + 1 / 91)),
        "spend_trend_90d": pytest.approx((80.5 / 90 - 100 / 91) / (80.5 / 90 + 100 / 91)),
        "days_since_last_activity": 1.0,  # the login on Jun 29
    }


def test_keys_are_exactly_the_contract_feature_names_in_order() -> None:
    assert tuple(compute_features(history(), AS_OF)) == PROFILE_FEATURE_NAMES
    assert tuple(compute_features([], AS_OF)) == PROFILE_FEATURE_NAMES


def test_history_features_are_undefined_without_enough_history() -> None:
    one_order = [Ev("signup", AS_OF - timedelta(days=20)), Ev("order_placed", AS_OF)]
    features = compute_features(one_order, AS_OF)

    # One order: no interval. Twenty days old: no window before the last 30 days.
    assert all(features[name] is None for name in HISTORY_FEATURE_NAMES)


def test_orders_at_one_instant_have_a_zero_interval_and_no_variation() -> None:
    twice = [Ev("order_placed", AS_OF - timedelta(days=3)) for _ in range(2)]
    features = compute_features(twice, AS_OF)

    assert features["order_interval_mean_days"] == 0.0
    assert features["order_interval_cv"] is None
    assert features["order_recency_ratio"] == 3.0  # over an interval of at least a day


def test_trends_fall_when_the_customer_orders_less_than_before() -> None:
    start = AS_OF - timedelta(days=300)
    events = [Ev("signup", start)] + [
        Ev("order_placed", start + timedelta(days=d), {"amount": 10}) for d in range(0, 200, 10)
    ]  # every 10 days until 100 days ago
    features = compute_features(events, AS_OF)

    assert features["order_rate_trend_30d"] == -1.0
    assert features["order_rate_trend_90d"] == -1.0
    assert features["spend_trend_90d"] == -1.0
    assert features["order_interval_mean_days"] == 10.0
    assert features["order_interval_cv"] == 0.0
    assert features["order_recency_ratio"] == pytest.approx(11.0)  # 110 days away


def test_events_after_as_of_are_ignored_point_in_time() -> None:
    features = compute_features(history(), at(2024, 3, 1, 12))

    assert features["total_orders"] == 1.0
    assert features["total_spent"] == 100.0
    assert features["discount_usage_rate"] == 1.0
    assert features["days_since_last_order"] == pytest.approx(0.5)
    assert features["loyalty_points"] == 150.0
    assert features["email_open_rate"] == 0.0
    assert features["account_age_days"] == pytest.approx(60.5)  # Jan 31 + Feb 29 + 0.5


def test_an_event_exactly_at_as_of_counts() -> None:
    features = compute_features([Ev("order_placed", AS_OF, {"amount": 7})], AS_OF)

    assert features["total_orders"] == 1.0
    assert features["days_since_last_order"] == 0.0


def test_without_events_counts_are_zero_and_ages_unknown() -> None:
    features = compute_features([], AS_OF)

    assert features["days_since_last_order"] is None
    assert features["account_age_days"] is None
    unknown = {"days_since_last_order", "account_age_days", *HISTORY_FEATURE_NAMES}
    assert all(features[name] is None for name in HISTORY_FEATURE_NAMES)
    assert all(value == 0.0 for name, value in features.items() if name not in unknown)


def test_without_orders_days_since_last_order_is_the_account_age() -> None:
    events = [Ev("signup", AS_OF - timedelta(days=10)), Ev("login", AS_OF - timedelta(days=1))]

    features = compute_features(events, AS_OF)

    assert features["account_age_days"] == 10.0
    assert features["days_since_last_order"] == 10.0
    assert features["avg_order_value"] == 0.0
    assert features["discount_usage_rate"] == 0.0


def test_without_signup_account_age_starts_at_the_first_event() -> None:
    events = [
        Ev("login", AS_OF - timedelta(days=3)),
        Ev("login", AS_OF - timedelta(days=7, hours=12)),
    ]

    assert compute_features(events, AS_OF)["account_age_days"] == 7.5


def test_a_late_signup_still_defines_the_account_age() -> None:
    events = [Ev("login", AS_OF - timedelta(days=20)), Ev("signup", AS_OF - timedelta(days=5))]

    assert compute_features(events, AS_OF)["account_age_days"] == 5.0


def test_email_open_rate_is_capped_at_one() -> None:
    events = [Ev("email_sent", AS_OF)] + [Ev("email_opened", AS_OF)] * 3

    assert compute_features(events, AS_OF)["email_open_rate"] == 1.0


def test_email_open_rate_is_zero_when_nothing_was_sent() -> None:
    assert compute_features([Ev("email_opened", AS_OF)], AS_OF)["email_open_rate"] == 0.0


def test_orders_without_amount_count_but_add_nothing() -> None:
    events = [
        Ev("order_placed", AS_OF, {}),
        Ev("order_placed", AS_OF, {"amount": True}),
        Ev("order_placed", AS_OF, {"amount": 9}),
    ]

    features = compute_features(events, AS_OF)

    assert features["total_orders"] == 3.0
    assert features["total_spent"] == 9.0
    assert features["avg_order_value"] == 3.0


def test_loyalty_points_follow_a_ledger_of_deltas_and_balances() -> None:
    events = [
        Ev("loyalty_points_changed", AS_OF - timedelta(days=3), {"balance": 500}),
        Ev("loyalty_points_changed", AS_OF - timedelta(days=2), {"delta": -120}),
        Ev("loyalty_points_changed", AS_OF - timedelta(days=1), {"delta": 30}),
    ]

    assert compute_features(events, AS_OF)["loyalty_points"] == 410.0


def test_loyalty_events_at_the_same_instant_keep_their_given_order() -> None:
    events = [
        Ev("loyalty_points_changed", AS_OF, {"delta": 10}),
        Ev("loyalty_points_changed", AS_OF, {"balance": 3}),
    ]

    assert compute_features(events, AS_OF)["loyalty_points"] == 3.0


def test_accepts_the_ingest_schema_objects_too() -> None:
    events = [
        EventIn(
            event_id="e1",
            customer_id="c1",
            type="order_placed",
            occurred_at=AS_OF - timedelta(days=1),
            properties={"amount": 20, "discount": 2},
        )
    ]

    features = compute_features(events, AS_OF)

    assert features["total_spent"] == 20.0
    assert features["discount_usage_rate"] == 1.0


def test_a_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        compute_features([], datetime(2024, 6, 30))
