"""The pure alerting rules: thresholds, cooldown, in-batch dedupe, backfill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from churn_alerts.rules import (
    DEFAULT_RULES,
    AlertRules,
    TenantScore,
    decide_alerts,
    plan,
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


# --- risk bands with hysteresis ---------------------------------------------------------------

BANDED = AlertRules(0.7, 0.2, 0, high_exit_threshold=0.5)


def _run(rules: AlertRules, probabilities: list[float]) -> list[float]:
    """Score one customer with each probability in its own batch, carrying the band over;
    the probabilities that raised ``high_risk``."""
    bands: dict[tuple[str, str], bool] = {}
    raised = []
    for p in probabilities:
        result = plan([TenantScore("a", score(p))], {"a": rules}, {}, NOW, bands)
        bands.update(result.band_changes)
        raised += [a.score.churn_probability for a in result.alerts if a.kind == "high_risk"]
    return raised


def test_oscillating_around_the_threshold_raises_high_risk_once():
    assert _run(BANDED, [0.71, 0.69, 0.72, 0.66, 0.75, 0.55, 0.7]) == [0.71]


def test_dropping_below_the_exit_threshold_and_coming_back_raises_again():
    assert _run(BANDED, [0.71, 0.69, 0.49, 0.6, 0.72]) == [0.71, 0.72]


def test_without_hysteresis_every_score_over_the_threshold_may_raise():
    assert _run(AlertRules(0.7, 0.2, 0), [0.71, 0.69, 0.72]) == [0.71, 0.72]


def test_the_band_changes_only_on_entering_and_leaving():
    entered = plan([TenantScore("a", score(0.8))], {"a": BANDED}, {}, NOW)
    in_band = {("a", "c1"): True}
    staying = plan([TenantScore("a", score(0.6))], {"a": BANDED}, {}, NOW, in_band)
    leaving = plan([TenantScore("a", score(0.4))], {"a": BANDED}, {}, NOW, in_band)
    assert entered.band_changes == {("a", "c1"): True}
    assert staying.band_changes == {}
    assert leaving.band_changes == {("a", "c1"): False}


def test_the_cooldown_still_applies_to_entering_the_band():
    rules = AlertRules(0.7, 0.2, 60, high_exit_threshold=0.5)
    recent = {("a", "c1", "high_risk"): NOW - timedelta(minutes=10)}
    result = plan([TenantScore("a", score(0.8))], {"a": rules}, recent, NOW)
    assert result.alerts == []
    assert result.band_changes == {("a", "c1"): True}


def test_within_one_batch_the_band_is_carried_from_score_to_score():
    scores = [TenantScore("a", score(p)) for p in (0.75, 0.4, 0.8)]
    result = plan(scores, {"a": BANDED}, {}, NOW)
    # one high_risk per customer and batch, the band ends where the last score put it
    assert [a.score.churn_probability for a in result.alerts] == [0.75]
    assert result.band_changes == {("a", "c1"): True}


def test_backfill_neither_raises_nor_moves_the_band():
    result = plan([TenantScore("a", score(0.9, backfill=True))], {"a": BANDED}, {}, NOW)
    assert result.alerts == []
    assert result.band_changes == {}
