"""What a delivery attempt is and how its answer is judged (pure: no I/O).

* 2xx: delivered.
* 429 and 503: retried no earlier than the receiver's ``Retry-After`` (seconds or an HTTP date),
  capped; without one, like any other retryable failure. The wait also holds back every other
  delivery to the same channel (Slack's and Discord's limits are per webhook).
* 408, 409, 425, other 5xx, network errors and timeouts: retried with exponential backoff and
  jitter.
* any other answer (4xx, and 3xx since redirects are never followed): ``rejected``, not retried;
  the delivery is dead at once (and can be replayed once the receiver is fixed).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

from churn_alerts.channels import EmailContent

#: Answers worth trying again (besides 5xx).
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
#: Answers whose ``Retry-After`` is honoured.
RETRY_AFTER_STATUSES = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class WebhookJob:
    """One claimed delivery, ready to be signed and posted."""

    delivery_id: str
    url: str
    secret: str
    kind: str
    body: bytes
    attempt: int
    channel_id: str = ""
    event: str = "churn_alert"
    #: E-mail deliveries: the recipients and the message (``body`` is then empty).
    recipients: tuple[str, ...] = ()
    email: EmailContent | None = None


#: What became of one attempt:
#:
#: * ``delivered``: the receiver answered 2xx;
#: * ``failed``: a retryable error or answer; retried after ``Retry-After`` or a backoff until
#:   ``max_attempts``, then ``dead``;
#: * ``rejected``: an answer that retrying cannot change (most 4xx); ``dead`` at once;
#: * ``refused``: the URL policy refused the destination at send time; failed at once, since
#:   sending again would be refused again;
#: * ``not_sent``: interrupted (shutdown) before the request was completely written, so the
#:   receiver cannot have acted on it; due again at once and the attempt not counted;
#: * ``unknown``: interrupted after the request was written and before the answer; the
#:   receiver may have it, so it is not sent again (status ``unknown``) rather than risk a
#:   duplicate.
DeliveryOutcome = Literal["delivered", "failed", "rejected", "refused", "not_sent", "unknown"]


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivery_id: str
    attempt: int
    outcome: DeliveryOutcome
    error: str | None = None
    #: The receiver's HTTP status, when it answered.
    status_code: int | None = None
    #: The receiver's ``Retry-After``, in seconds (already capped), when it sent one.
    retry_after_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "delivered"


def retry_after_seconds(value: str | None, now: datetime, cap_seconds: float) -> float | None:
    """``Retry-After`` (delta-seconds or an HTTP date) as seconds from ``now``, between 0 and
    ``cap_seconds``; ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), cap_seconds)


def judge_answer(
    job: WebhookJob, status_code: int, retry_after: str | None, now: datetime, cap_seconds: float
) -> DeliveryResult:
    """The outcome of an attempt the receiver answered with ``status_code``."""
    if 200 <= status_code < 300:
        return DeliveryResult(job.delivery_id, job.attempt, "delivered", status_code=status_code)
    error = f"HTTP {status_code}"
    if status_code in RETRYABLE_STATUSES or 500 <= status_code < 600:
        wait = None
        if status_code in RETRY_AFTER_STATUSES:
            wait = retry_after_seconds(retry_after, now, cap_seconds)
            if wait is not None:
                error += f" (Retry-After {wait:g}s)"
        return DeliveryResult(
            job.delivery_id,
            job.attempt,
            "failed",
            error,
            status_code=status_code,
            retry_after_seconds=wait,
        )
    return DeliveryResult(
        job.delivery_id, job.attempt, "rejected", error + " (not retried)", status_code=status_code
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float
    #: How long a claimed delivery stays hidden from other workers while it is being posted.
    lease_seconds: float

    def backoff(self, attempt: int) -> timedelta:
        """``base * 2 ** (attempt - 1)`` capped, with "equal jitter": between half and all of
        it, so receivers that came back are not hit by every retry at the same instant."""
        seconds = min(self.base_seconds * 2 ** max(attempt - 1, 0), self.max_seconds)
        return timedelta(seconds=seconds * random.uniform(0.5, 1.0))

    def next_attempt(self, result: DeliveryResult, now: datetime) -> datetime:
        if result.retry_after_seconds is not None:
            return now + timedelta(seconds=result.retry_after_seconds)
        return now + self.backoff(result.attempt)


@dataclass(frozen=True, slots=True)
class Pace:
    """At most ``burst`` requests at once, then one every ``interval_seconds`` (GCRA)."""

    burst: int
    interval_seconds: float

    def admit(self, paced_until: datetime | None, now: datetime) -> tuple[bool, datetime]:
        """Whether a request may leave ``now``, and the destination's new ``paced_until``
        (when admitted) or the time it may leave (when not)."""
        interval = timedelta(seconds=self.interval_seconds)
        tolerance = interval * (self.burst - 1)
        tat = max(paced_until or now, now)
        if tat - now > tolerance:
            return False, tat - tolerance
        return True, tat + interval


#: Discord allows about 5 requests per 2 s per webhook: 2 per second, one at a time, never
#: more than 5 in any 2-second window. Slack about 1 per second per channel.
KIND_PACES: dict[str, Pace] = {
    "discord": Pace(burst=1, interval_seconds=0.5),
    "slack": Pace(burst=1, interval_seconds=1.05),
    #: One channel's recipients, not the whole SMTP server: a burst of 5, then 2 per second.
    "email": Pace(burst=5, interval_seconds=0.5),
}
