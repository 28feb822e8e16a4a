"""How an alert is worked: its states and which action may move it where (pure, no I/O).

::

    open ──acknowledge──▶ acknowledged ──resolve──▶ resolved
     │ ▲                      │                      │
     │ └──────reopen──────────┴──────────────────────┘
     └─snooze─▶ snoozed (until a time; then ``woken`` back to open by the worker)

* ``acknowledge``: from ``open`` or ``snoozed``;
* ``snooze``: from ``open``, ``acknowledged`` or ``snoozed`` (a new time);
* ``resolve`` (with an outcome): from any state but ``resolved``;
* ``reopen``: from any state but ``open``; clears the outcome and the snooze;
* ``assign``: in any state but ``resolved``; the status does not change;
* ``wake``: ``snoozed`` whose time has come → ``open`` (the clock, not a user).

Anything else is a conflict (409): the alert is not in a state where that makes sense, which is
what two people working the same inbox see when one of them was faster.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from churn_shared.contracts import AlertAction, AlertOutcome, AlertStatus

__all__ = [
    "ALERT_OUTCOMES",
    "ALERT_STATUSES",
    "AlertAction",
    "AlertOutcome",
    "AlertStatus",
    "Command",
    "next_status",
]

ALERT_STATUSES: tuple[AlertStatus, ...] = ("open", "acknowledged", "snoozed", "resolved")
ALERT_OUTCOMES: tuple[AlertOutcome, ...] = ("retained", "churned", "false_alarm")

#: What a user (or the clock) asks for; the action recorded is its past tense.
Command = Literal["acknowledge", "assign", "snooze", "resolve", "reopen", "wake"]

ACTIONS: Mapping[Command, AlertAction] = {
    "acknowledge": "acknowledged",
    "assign": "assigned",
    "snooze": "snoozed",
    "resolve": "resolved",
    "reopen": "reopened",
    "wake": "woken",
}

_FROM: Mapping[Command, frozenset[AlertStatus]] = {
    "acknowledge": frozenset({"open", "snoozed"}),
    "assign": frozenset({"open", "acknowledged", "snoozed"}),
    "snooze": frozenset({"open", "acknowledged", "snoozed"}),
    "resolve": frozenset({"open", "acknowledged", "snoozed"}),
    "reopen": frozenset({"acknowledged", "snoozed", "resolved"}),
    "wake": frozenset({"snoozed"}),
}

_TO: Mapping[Command, AlertStatus | None] = {
    "acknowledge": "acknowledged",
    "assign": None,  # unchanged
    "snooze": "snoozed",
    "resolve": "resolved",
    "reopen": "open",
    "wake": "open",
}


def next_status(command: Command, current: AlertStatus) -> AlertStatus | None:
    """The status after ``command``, or ``None`` when it is not allowed from ``current``."""
    if current not in _FROM[command]:
        return None
    return _TO[command] or current


def as_status(value: str) -> AlertStatus:
    for status in ALERT_STATUSES:
        if status == value:
            return status
    raise ValueError(f"unknown alert status {value!r}")
