"""Which alerts a churn score raises: pure functions over rules, scores and recent alerts.

* ``high_risk`` when the probability reaches the tenant's ``high_risk_threshold``;
* ``risk_increase`` when it rose by at least ``risk_increase_threshold`` since the previous score;
* never the same kind for the same customer inside ``cooldown_minutes`` (nor twice in one batch);
* backfilled history raises nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from churn_shared.contracts import ChurnScoreComputedV1

AlertKind = Literal["high_risk", "risk_increase"]
ALERT_KINDS: tuple[AlertKind, ...] = ("high_risk", "risk_increase")
#: Tolerance so that e.g. 0.9 - 0.7 counts as an increase of 0.2.
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class AlertRules:
    high_risk_threshold: float = 0.7
    risk_increase_threshold: float = 0.2
    cooldown_minutes: int = 1440

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)


DEFAULT_RULES = AlertRules()


@dataclass(frozen=True, slots=True)
class TenantScore:
    """A score as consumed: the tenant comes from the envelope."""

    tenant_id: str
    score: ChurnScoreComputedV1


@dataclass(frozen=True, slots=True)
class PlannedAlert:
    tenant_id: str
    kind: AlertKind
    score: ChurnScoreComputedV1


def triggered_kinds(rules: AlertRules, score: ChurnScoreComputedV1) -> list[AlertKind]:
    """The kinds of alert this score qualifies for, before any cooldown."""
    if score.backfill:
        return []
    kinds: list[AlertKind] = []
    if score.churn_probability >= rules.high_risk_threshold - _EPSILON:
        kinds.append("high_risk")
    previous = score.previous_probability
    if (
        previous is not None
        and score.churn_probability - previous >= rules.risk_increase_threshold - _EPSILON
    ):
        kinds.append("risk_increase")
    return kinds


def in_cooldown(rules: AlertRules, last_alert_at: datetime | None, now: datetime) -> bool:
    return last_alert_at is not None and now - last_alert_at < rules.cooldown


def decide_alerts(
    rules: AlertRules,
    score: ChurnScoreComputedV1,
    last_alert_at: Mapping[AlertKind, datetime],
    now: datetime,
) -> list[AlertKind]:
    """The alerts one score raises, given when each kind was last raised for its customer."""
    return [
        kind
        for kind in triggered_kinds(rules, score)
        if not in_cooldown(rules, last_alert_at.get(kind), now)
    ]


def plan_alerts(
    scores: Sequence[TenantScore],
    rules_by_tenant: Mapping[str, AlertRules],
    last_alert_at: Mapping[tuple[str, str, str], datetime],
    now: datetime,
) -> list[PlannedAlert]:
    """The alerts a batch of scores raises, in order; at most one per customer and kind."""
    raised: set[tuple[str, str, AlertKind]] = set()
    planned: list[PlannedAlert] = []
    for item in scores:
        rules = rules_by_tenant.get(item.tenant_id, DEFAULT_RULES)
        customer = item.score.customer_id
        last = {
            kind: at
            for kind in ALERT_KINDS
            if (at := last_alert_at.get((item.tenant_id, customer, kind))) is not None
        }
        for kind in decide_alerts(rules, item.score, last, now):
            key = (item.tenant_id, customer, kind)
            if key in raised:
                continue
            raised.add(key)
            planned.append(PlannedAlert(item.tenant_id, kind, item.score))
    return planned
