"""The pure alerting rules: thresholds, cooldown, in-batch dedupe, backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from churn_alerts.rules import (
    DEFAULT_RULES,
    AlertRules,
    TenantScore,
    decide_alerts,
    plan_alerts,
    triggered_kinds,
)
from churn_shared.contracts import ChurnScoreComputedV1

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def score(
    p: float, previous: float | None = None, *, customer: str = "c1", backfill: bool = False
) -> ChurnScoreComputedV1:
    return ChurnScoreComputedV1(
        customer_id=customer,
        churn_probability=p,
        previous_probability=previous,
        risk_level="high" if p >= 0.7 else "medium" if p >= 0.4 else "low",
        model_version="m1",
        scored_at=NOW,
        backfill=backfill,
    )


def test_defaults_match_the_contract():
    assert AlertRules(0.7, 0.2, 1440) == DEFAULT_RULES


def test_high_risk_at_the_threshold():
    assert decide_alerts(DEFAULT_RULES, score(0.7), {}, NOW) == ["high_risk"]


def test_below_threshold_raises_nothing():
    assert decide_alerts(DEFAULT_RULES, score(0.69), {}, NOW) == []


def test_risk_increase_by_at_least_the_threshold():
    assert decide_alerts(DEFAULT_RULES, score(0.5, previous=0.3), {}, NOW) == ["risk_increase"]


def test_small_increase_raises_nothing():
    assert decide_alerts(DEFAULT_RULES, score(0.5, previous=0.31), {}, NOW) == []


def test_no_previous_score_means_no_risk_increase():
    assert triggered_kinds(DEFAULT_RULES, score(0.65)) == []


def test_both_kinds_at_once():
    assert decide_alerts(DEFAULT_RULES, score(0.9, previous=0.2), {}, NOW) == [
        "high_risk",
        "risk_increase",
    ]


def test_backfill_raises_nothing():
    assert decide_alerts(DEFAULT_RULES, score(0.99, previous=0.0, backfill=True), {}, NOW) == []


def test_same_kind_inside_cooldown_is_suppressed():
    last = {"high_risk": NOW - timedelta(minutes=1439)}
    assert decide_alerts(DEFAULT_RULES, score(0.9), last, NOW) == []


def test_same_kind_after_cooldown_is_raised_again():
    last = {"high_risk": NOW - timedelta(minutes=1440)}
    assert decide_alerts(DEFAULT_RULES, score(0.9), last, NOW) == ["high_risk"]


def test_cooldown_is_per_kind():
    last = {"high_risk": NOW - timedelta(minutes=5)}
    assert decide_alerts(DEFAULT_RULES, score(0.9, previous=0.5), last, NOW) == ["risk_increase"]


def test_zero_cooldown_never_suppresses():
    rules = AlertRules(0.7, 0.2, 0)
    assert decide_alerts(rules, score(0.9), {"high_risk": NOW}, NOW) == ["high_risk"]


def test_tenant_rules_apply_per_tenant():
    strict = AlertRules(0.95, 0.5, 60)
    planned = plan_alerts(
        [TenantScore("a", score(0.8)), TenantScore("b", score(0.8))], {"a": strict}, {}, NOW
    )
    assert [(p.tenant_id, p.kind) for p in planned] == [("b", "high_risk")]


def test_batch_dedupes_the_same_customer_and_kind():
    planned = plan_alerts(
        [TenantScore("a", score(0.8)), TenantScore("a", score(0.85))], {}, {}, NOW
    )
    assert [(p.kind, p.score.churn_probability) for p in planned] == [("high_risk", 0.8)]


def test_batch_keeps_other_customers_and_tenants():
    planned = plan_alerts(
        [
            TenantScore("a", score(0.8, customer="c1")),
            TenantScore("a", score(0.8, customer="c2")),
            TenantScore("b", score(0.8, customer="c1")),
        ],
        {},
        {},
        NOW,
    )
    assert [(p.tenant_id, p.score.customer_id) for p in planned] == [
        ("a", "c1"),
        ("a", "c2"),
        ("b", "c1"),
    ]


def test_batch_respects_stored_recent_alerts():
    recent = {("a", "c1", "high_risk"): NOW - timedelta(hours=1)}
    planned = plan_alerts([TenantScore("a", score(0.8))], {}, recent, NOW)
    assert planned == []
