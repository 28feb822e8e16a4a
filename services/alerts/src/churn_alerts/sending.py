"""Posting one webhook: sign it, send it through the pinned transport, judge the answer.

Shared by the delivery worker and the channel test (``POST /v1/alert-channels/{id}/test``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from churn_alerts.config import Settings
from churn_alerts.delivery import DeliveryResult, WebhookJob, judge_answer
from churn_alerts.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    signature_header,
    standard_headers,
)
from churn_alerts.url_policy import DestinationRefusedError
from churn_alerts.webhook_transport import PinnedTransport, Resolver, system_resolver
from churn_shared.db import utcnow

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


class WebhookSender:
    """Every POST goes through :class:`~churn_alerts.webhook_transport.PinnedTransport` (the
    host is resolved and checked at send time, and the connection made to the checked address)
    unless a ``transport`` is given (tests). Redirects are never followed."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self._retry_after_cap = settings.delivery_retry_after_max_seconds
        if transport is None:
            transport = PinnedTransport(
                resolver or system_resolver, allow_internal=settings.dev_mode
            )
        self._client = httpx.AsyncClient(
            timeout=settings.delivery_timeout_seconds,
            follow_redirects=False,
            transport=transport,
            # Proxies from the environment would resolve the host themselves, after our check.
            trust_env=False,
            headers={"User-Agent": "churn-alerts-webhooks/1"},
        )

    async def send(self, job: WebhookJob, *, trace: Trace | None = None) -> DeliveryResult:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            **standard_headers(job.secret, job.delivery_id, timestamp, job.body),
            SIGNATURE_HEADER: signature_header(job.secret, timestamp, job.body),
            EVENT_HEADER: job.event,
            DELIVERY_HEADER: job.delivery_id,
        }
        extensions = {"trace": trace} if trace is not None else None
        try:
            response = await self._client.post(
                job.url, content=job.body, headers=headers, extensions=extensions
            )
        except DestinationRefusedError as exc:
            return DeliveryResult(job.delivery_id, job.attempt, "refused", f"refused: {exc}")
        except httpx.HTTPError as exc:
            return DeliveryResult(
                job.delivery_id, job.attempt, "failed", f"{type(exc).__name__}: {exc}"
            )
        return judge_answer(
            job,
            response.status_code,
            response.headers.get("retry-after"),
            utcnow(),
            self._retry_after_cap,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
