"""E-mail channels against a real SMTP server on 127.0.0.1 (aiosmtpd): immediate and digest
messages with a text and an HTML part, retried on temporary refusals, dead on permanent ones;
recipients validated so that no header can be injected."""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import ValidationError
from sqlmodel import select

from churn_alerts.exceptions import InvalidChannelUrlError
from churn_alerts.main import create_app
from churn_alerts.models import Delivery
from churn_alerts.rules import TenantScore
from churn_alerts.schemas import AlertChannelCreate
from churn_alerts.service import AlertService, DigestService
from churn_alerts.worker import WebhookDeliveryWorker
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import unit_of_work
from testkit import free_port

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CONSOLE = "https://console.example.com"


class Mailbox:
    """An aiosmtpd handler: keeps every accepted message; ``answers`` (popped in order) replace
    the answer to DATA, e.g. ``"451 4.3.0 try later"``."""

    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []
        self.answers: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answers:
            return self.answers.pop(0)
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((envelope, message))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def email_settings(make_settings, smtp_server):
    _, port = smtp_server

    def make(**overrides: Any) -> Any:
        return make_settings(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            smtp_from="alerts@churn.example.com",
            console_base_url=CONSOLE,
            **overrides,
        )

    return make


async def _email_channel(factory, **values: Any) -> tuple[str, Any]:
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"
    async with unit_of_work(factory) as session:
        channel = await AlertService(session).create_channel(
            tenant_id,
            AlertChannelCreate(kind="email", **values),
            allow_internal_urls=False,
            email_enabled=True,
            now=NOON,
        )
    return tenant_id, channel


async def _raise(factory, tenant_id: str, now: datetime, customers: list[str]) -> None:
    scores = [
        TenantScore(
            tenant_id,
            ChurnScoreComputedV1(
                customer_id=c,
                churn_probability=0.9,
                risk_level="high",
                model_version="m-1",
                scored_at=now,
            ),
        )
        for c in customers
    ]
    async with unit_of_work(factory) as session:
        await AlertService(session).raise_alerts(scores, now=now)


async def test_an_alert_is_mailed_to_every_recipient_as_text_and_html(
    session_factory, email_settings, smtp_server, clock
):
    mailbox, _ = smtp_server
    recipients = ["retention@example.com", "lead@example.org"]
    tenant_id, channel = await _email_channel(session_factory, recipients=recipients)
    assert channel.url == "mailto:retention@example.com,lead@example.org"
    assert channel.recipients == recipients
    clock.now = NOON
    await _raise(session_factory, tenant_id, clock.now, ["c-<1>"])
    worker = WebhookDeliveryWorker(session_factory, email_settings(), clock=clock)

    assert await worker.deliver_once() == 1
    await worker.stop()

    [(envelope, message)] = mailbox.messages
    assert sorted(envelope.rcpt_tos) == sorted(recipients)
    assert envelope.mail_from == "alerts@churn.example.com"
    assert message["Subject"] == "High churn risk: customer c-<1> at 90% (high risk)"
    async with session_factory() as session:
        delivery = (
            await session.exec(select(Delivery).where(Delivery.tenant_id == tenant_id))
        ).one()
    assert message["Message-ID"] == f"<{delivery.id}@churn-alerts>"
    assert delivery.status == "delivered"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Churn probability: 90%" in text
    assert "c-&lt;1&gt;" in html
    assert "<1>" not in html


async def test_a_daily_digest_is_one_mail_grouped_by_risk(
    session_factory, email_settings, smtp_server, clock
):
    mailbox, _ = smtp_server
    tenant_id, channel = await _email_channel(
        session_factory, recipients=["team@example.com"], delivery_mode="daily", digest_hour=8
    )
    await _raise(session_factory, tenant_id, NOON + timedelta(hours=1), ["c-1", "c-2", "c-3"])
    clock.now = channel.next_digest_at
    async with unit_of_work(session_factory) as session:
        assert await DigestService(session).assemble_due(clock.now) == 1
    worker = WebhookDeliveryWorker(session_factory, email_settings(), clock=clock)

    assert await worker.deliver_once() == 1
    await worker.stop()

    [(_, message)] = mailbox.messages
    assert message["Subject"] == "Churn alert digest: 3 new alerts"
    text = message.get_body(("plain",)).get_content()
    assert "High risk (3)" in text
    assert text.count(f"{CONSOLE}/alerts/") == 3
    assert message["X-Churn-Event"] == "churn_alert_digest"


async def test_a_temporary_refusal_is_retried_and_a_permanent_one_is_dead(
    session_factory, email_settings, smtp_server, clock
):
    mailbox, _ = smtp_server
    tenant_id, _ = await _email_channel(session_factory, recipients=["team@example.com"])
    clock.now = NOON
    await _raise(session_factory, tenant_id, clock.now, ["c-1"])
    worker = WebhookDeliveryWorker(session_factory, email_settings(), clock=clock)
    mailbox.answers = ["451 4.3.0 try again later"]

    assert await worker.deliver_once() == 1
    async with session_factory() as session:
        delivery = (
            await session.exec(select(Delivery).where(Delivery.tenant_id == tenant_id))
        ).one()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert "451" in (delivery.last_error or "")

    mailbox.answers = ["554 5.7.1 rejected"]
    clock.now = delivery.next_attempt_at
    assert await worker.deliver_once() == 1
    await worker.stop()
    async with session_factory() as session:
        delivery = (
            await session.exec(select(Delivery).where(Delivery.tenant_id == tenant_id))
        ).one()
    assert delivery.status == "dead"
    assert "554" in (delivery.last_error or "")
    assert mailbox.messages == []


async def test_an_unreachable_smtp_server_is_retried(session_factory, make_settings, clock):
    tenant_id, _ = await _email_channel(session_factory, recipients=["team@example.com"])
    clock.now = NOON
    await _raise(session_factory, tenant_id, clock.now, ["c-1"])
    settings = make_settings(
        smtp_host="127.0.0.1", smtp_port=free_port(), smtp_security="none", smtp_timeout_seconds=2
    )
    worker = WebhookDeliveryWorker(session_factory, settings, clock=clock)

    assert await worker.deliver_once() == 1
    await worker.stop()
    async with session_factory() as session:
        delivery = (
            await session.exec(select(Delivery).where(Delivery.tenant_id == tenant_id))
        ).one()
    assert (delivery.status, delivery.attempts) == ("pending", 1)


@pytest.mark.parametrize(
    "address",
    [
        "team@example.com\r\nBcc: evil@example.net",
        "team@example.com\nBcc: evil@example.net",
        "team@example.com, evil@example.net",
        "Team <team@example.com>",
        '"team"@example.com',
        "team@localhost",
        "team@@example.com",
        "te am@example.com",
        "team@exa_mple.com",
        "",
        "a" * 65 + "@example.com",
    ],
)
def test_recipients_that_are_not_plain_addresses_are_refused(address):
    with pytest.raises(ValidationError):
        AlertChannelCreate(kind="email", recipients=[address])


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "email"},
        {"kind": "email", "recipients": []},
        {"kind": "email", "recipients": ["a@example.com"], "url": "https://example.com/hook"},
        {"kind": "email", "recipients": ["a@example.com", "A@example.com"]},
        {"kind": "email", "recipients": [f"u{i}@example.com" for i in range(21)]},
        {"kind": "webhook", "url": "https://example.com/hook", "recipients": ["a@example.com"]},
        {"kind": "webhook"},
    ],
)
def test_channel_destinations_match_their_kind(body):
    with pytest.raises(ValidationError):
        AlertChannelCreate(**body)


async def test_an_email_channel_needs_an_smtp_server(session_factory):
    async with unit_of_work(session_factory) as session:
        with pytest.raises(InvalidChannelUrlError):
            await AlertService(session).create_channel(
                "t-x",
                AlertChannelCreate(kind="email", recipients=["a@example.com"]),
                allow_internal_urls=False,
                email_enabled=False,
            )


async def test_the_api_creates_lists_and_tests_an_email_channel(
    email_settings, smtp_server, token_signer, in_process, tenant
):
    mailbox, _ = smtp_server
    app = create_app(email_settings(run_workers=False), token_verifier=token_signer.verifier())
    body = {"kind": "email", "recipients": ["ops@example.com"], "delivery_mode": "hourly"}
    async with in_process(app) as client:
        created = await client.post("/v1/alert-channels", headers=tenant["headers"], json=body)
        listed = await client.get("/v1/alert-channels", headers=tenant["headers"])
        tested = await client.post(
            f"/v1/alert-channels/{created.json()['id']}/test", headers=tenant["headers"]
        )
        injected = await client.post(
            "/v1/alert-channels",
            headers=tenant["headers"],
            json={"kind": "email", "recipients": ["ops@example.com\r\nBcc: x@example.net"]},
        )
    assert created.status_code == 201, created.text
    [channel] = listed.json()["items"]
    assert channel["recipients"] == ["ops@example.com"]
    assert channel["url"] == "mailto:ops@example.com"
    assert channel["delivery_mode"] == "hourly"
    assert tested.json()["delivered"] is True, tested.text
    [(envelope, message)] = mailbox.messages
    assert envelope.rcpt_tos == ["ops@example.com"]
    assert message["X-Churn-Event"] == "churn_alert_test"
    assert injected.status_code == 422
    assert "Bcc" not in str(mailbox.messages[0][1])


async def test_the_api_refuses_an_email_channel_without_an_smtp_server(
    make_settings, token_signer, in_process, tenant
):
    app = create_app(make_settings(run_workers=False), token_verifier=token_signer.verifier())
    body = {"kind": "email", "recipients": ["ops@example.com"]}
    async with in_process(app) as client:
        created = await client.post("/v1/alert-channels", headers=tenant["headers"], json=body)
    assert created.status_code == 422
    assert "SMTP_HOST" in created.json()["detail"]
