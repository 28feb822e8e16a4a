"""Recommendations: a tenant's rule table maps score drivers to retention actions.

A rule ``{feature, direction, action, message}`` fires when one of a score's top drivers is
``feature`` pushing the risk in ``direction`` (``increases_risk`` by default: e.g. a low email
open rate that raises the risk fires the ``email_open_rate`` rule). Each action is recommended
once per score, in the order of the drivers (largest contribution first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

DEFAULT_RULES: tuple[dict[str, str], ...] = (
    {
        "feature": "payment_failures_last_90d",
        "direction": "increases_risk",
        "action": "payment_method_reminder",
        "message": "Recent payment failures: remind the customer to update the payment method.",
    },
    {
        "feature": "days_since_last_order",
        "direction": "increases_risk",
        "action": "win_back_offer",
        "message": "Long since the last order: send a win-back offer.",
    },
    {
        "feature": "support_tickets_last_90d",
        "direction": "increases_risk",
        "action": "service_recovery_call",
        "message": "Several support tickets: call to recover the service experience.",
    },
    {
        "feature": "email_open_rate",
        "direction": "increases_risk",
        "action": "re_engagement_campaign",
        "message": "Emails are going unread: enrol the customer in a re-engagement campaign.",
    },
    {
        "feature": "logins_last_30d",
        "direction": "increases_risk",
        "action": "onboarding_nudge",
        "message": "Few recent logins: nudge the customer back with onboarding help.",
    },
)


def default_rules() -> list[dict[str, str]]:
    return [dict(rule) for rule in DEFAULT_RULES]


def recommend(
    drivers: Iterable[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The actions the rules give for these drivers, each once, strongest driver first."""
    index: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for rule in rules:
        index.setdefault((str(rule["feature"]), str(rule["direction"])), []).append(rule)
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for driver in drivers:
        for rule in index.get((str(driver["feature"]), str(driver["direction"])), ()):
            action = str(rule["action"])
            if action in seen:
                continue
            seen.add(action)
            out.append(
                {
                    "action": action,
                    "message": str(rule.get("message", "")),
                    "feature": str(driver["feature"]),
                    "contribution": float(driver["contribution"]),
                }
            )
    return out
