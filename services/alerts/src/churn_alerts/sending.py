"""Sending one message: a webhook (signed, through the pinned transport, the answer judged) or
an e-mail (through the operator's SMTP server).

Shared by the delivery worker and the channel test (``POST /v1/alert-channels/{id}/test``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
import httpx

from churn_alerts.config import Settings
from churn_alerts.delivery import DeliveryOutcome, DeliveryResult, WebhookJob, judge_answer
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


class EmailSender:
    """Sends e-mail deliveries through the SMTP server of the environment (``smtp_*``
    settings). The server is the operator's, not the tenant's: it is not subject to the webhook
    URL policy. ``Message-ID`` is derived from the delivery id, so a repeat can be recognised.

    Outcomes: accepted for at least one recipient → ``delivered`` (refused recipients are
    noted); a permanent refusal (5xx, or every recipient refused) → ``rejected``; a temporary
    one (4xx), a timeout or a connection error → ``failed`` and retried like any delivery."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def configured(self) -> bool:
        return self._settings.smtp_host is not None

    def message(self, job: WebhookJob) -> EmailMessage:
        assert job.email is not None
        s = self._settings
        message = EmailMessage()
        message["From"] = s.smtp_from or f"churn-alerts@{s.smtp_host or 'localhost'}"
        message["To"] = ", ".join(job.recipients)
        message["Subject"] = job.email.subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = f"<{job.delivery_id}@churn-alerts>"
        message[EVENT_HEADER] = job.event
        message[DELIVERY_HEADER] = job.delivery_id
        message.set_content(job.email.text)
        message.add_alternative(job.email.html, subtype="html")
        return message

    async def send(self, job: WebhookJob, *, trace: Trace | None = None) -> DeliveryResult:
        s = self._settings
        if s.smtp_host is None:
            return DeliveryResult(
                job.delivery_id, job.attempt, "failed", "e-mail is not configured (SMTP_HOST)"
            )
        try:
            refused, _reply = await aiosmtplib.send(
                self.message(job),
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                timeout=s.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return DeliveryResult(
                job.delivery_id, job.attempt, "rejected", f"every recipient refused: {exc}"[:1000]
            )
        except aiosmtplib.SMTPResponseException as exc:
            outcome: DeliveryOutcome = "rejected" if exc.code >= 500 else "failed"
            answer = f"SMTP {exc.code} {exc.message}"
            return DeliveryResult(
                job.delivery_id, job.attempt, outcome, answer[:1000], status_code=exc.code
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return DeliveryResult(
                job.delivery_id, job.attempt, "failed", f"{type(exc).__name__}: {exc}"[:1000]
            )
        error: str | None = None
        if refused:
            error = "refused: " + ", ".join(f"{r} ({e.code})" for r, e in sorted(refused.items()))
        return DeliveryResult(job.delivery_id, job.attempt, "delivered", error, status_code=250)


class MessageSender:
    """Sends a job the way its channel kind needs: e-mail over SMTP, anything else as a
    webhook."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.webhooks = WebhookSender(settings, transport=transport, resolver=resolver)
        self.email = EmailSender(settings)

    async def send(self, job: WebhookJob, *, trace: Trace | None = None) -> DeliveryResult:
        if job.kind == "email":
            return await self.email.send(job, trace=trace)
        return await self.webhooks.send(job, trace=trace)

    async def aclose(self) -> None:
        await self.webhooks.aclose()
