"""Which alerts a churn score raises: pure functions over rules, scores and recent alerts.

* ``high_risk`` when the probability reaches the tenant's ``high_risk_threshold``;
* ``risk_increase`` when it rose by at least ``risk_increase_threshold`` since the previous score;
* never the same kind for the same customer inside ``cooldown_minutes`` (nor twice in one batch);
* backfilled history raises nothing.

Risk bands with hysteresis (a tenant that sets ``high_exit_threshold``): a customer *enters* the
high band when the probability reaches ``high_risk_threshold`` and stays in it until it falls
below ``high_exit_threshold``. ``high_risk`` is then raised only on entering the band (and still
not inside the cooldown): a customer oscillating around the threshold raises it once, and again
only after dropping below the exit threshold and coming back. The band of each customer is state
(``risk_bands``), passed in and returned as changes by :func:`plan`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from churn_alerts.schedule import QuietHours
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
    #: Below this a customer leaves the high band; ``None``: no hysteresis (cooldown only).
    high_exit_threshold: float | None = None
    #: The tenant's IANA time zone: quiet hours and digest times are local to it.
    timezone: str = "UTC"
    #: Outbound messages of alerts raised inside wait until the window ends.
    quiet_hours: QuietHours | None = None

    @property
    def cooldown(self) -> timedelta:
        return timedelta(minutes=self.cooldown_minutes)

    @property
    def hysteresis(self) -> bool:
        return self.high_exit_threshold is not None


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


def in_high_band(rules: AlertRules, was_in_band: bool, probability: float) -> bool:
    """The customer's band after this probability: entered at ``high_risk_threshold``, left
    only below ``high_exit_threshold``."""
    if was_in_band and rules.high_exit_threshold is not None:
        return probability >= rules.high_exit_threshold - _EPSILON
    return probability >= rules.high_risk_threshold - _EPSILON


CustomerKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class AlertPlan:
    alerts: list[PlannedAlert]
    #: The customers whose band changed: ``(tenant, customer)`` → in the high band now.
    band_changes: dict[CustomerKey, bool]


def plan(
    scores: Sequence[TenantScore],
    rules_by_tenant: Mapping[str, AlertRules],
    last_alert_at: Mapping[tuple[str, str, str], datetime],
    now: datetime,
    bands: Mapping[CustomerKey, bool] | None = None,
) -> AlertPlan:
    """The alerts a batch of scores raises, in order (at most one per customer and kind), and
    how the bands of customers of tenants with hysteresis change. ``bands`` says who is in the
    high band now (a customer missing from it is not)."""
    raised: set[tuple[str, str, AlertKind]] = set()
    planned: list[PlannedAlert] = []
    current: dict[CustomerKey, bool] = dict(bands or {})
    changes: dict[CustomerKey, bool] = {}
    for item in scores:
        if item.score.backfill:
            continue
        rules = rules_by_tenant.get(item.tenant_id, DEFAULT_RULES)
        customer = item.score.customer_id
        last = {
            kind: at
            for kind in ALERT_KINDS
            if (at := last_alert_at.get((item.tenant_id, customer, kind))) is not None
        }
        kinds = decide_alerts(rules, item.score, last, now)
        if rules.hysteresis:
            band_key = (item.tenant_id, customer)
            was = current.get(band_key, False)
            now_in = in_high_band(rules, was, item.score.churn_probability)
            if now_in != was:
                current[band_key] = now_in
                changes[band_key] = now_in
            if was or not now_in:  # only entering the band raises ``high_risk``
                kinds = [k for k in kinds if k != "high_risk"]
        for kind in kinds:
            key = (item.tenant_id, customer, kind)
            if key in raised:
                continue
            raised.add(key)
            planned.append(PlannedAlert(item.tenant_id, kind, item.score))
    return AlertPlan(planned, changes)


def plan_alerts(
    scores: Sequence[TenantScore],
    rules_by_tenant: Mapping[str, AlertRules],
    last_alert_at: Mapping[tuple[str, str, str], datetime],
    now: datetime,
) -> list[PlannedAlert]:
    """The alerts of :func:`plan` for tenants without hysteresis."""
    return plan(scores, rules_by_tenant, last_alert_at, now).alerts
