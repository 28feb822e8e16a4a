"""Business logic of the alerts service. Takes a session; never commits."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_alerts.channels import (
    channel_message,
    digest_message,
    email_alert,
    email_digest,
    group_by_risk,
    kind_url_problem,
    mailto_url,
)
from churn_alerts.delivery import (
    KIND_PACES,
    DeliveryResult,
    Pace,
    RetryPolicy,
    WebhookJob,
)
from churn_alerts.exceptions import (
    AlertNotFoundError,
    ChannelNotFoundError,
    DeliveryNotFoundError,
    DeliveryNotReplayableError,
    InvalidChannelUrlError,
    InvalidTransitionError,
    UnknownAssigneeError,
)
from churn_alerts.lifecycle import ACTIONS, AlertOutcome, Command, as_status, next_status
from churn_alerts.models import (
    Alert,
    AlertChannel,
    AlertHistory,
    AlertRule,
    Delivery,
    DeliveryAttempt,
    Digest,
    DigestItem,
    RiskBand,
)
from churn_alerts.repository import (
    AlertFilters,
    AlertRepository,
    BandRepository,
    ChannelRepository,
    DeliveryRepository,
    DigestRepository,
    EventRepository,
    HistoryRepository,
    RuleRepository,
    delete_customer_alerts,
)
from churn_alerts.rules import DEFAULT_RULES, AlertRules, TenantScore, plan
from churn_alerts.schedule import DeliveryMode, QuietHours, next_digest_at
from churn_alerts.schemas import (
    AlertChannelCreate,
    AlertChannelCreated,
    AlertChannelList,
    AlertChannelRead,
    AlertDeliveries,
    AlertDeliveryRead,
    AlertHistoryRead,
    AlertOutcomeRead,
    AlertOutcomes,
    AlertPage,
    AlertRead,
    AlertRulesRead,
    AlertRulesUpdate,
    BulkItemResult,
    BulkResult,
    ChannelTestResult,
    DeliveryAttemptRead,
    DeliveryPage,
    DeliveryRead,
    QuietHoursWindow,
)
from churn_alerts.schemas import AlertHistory as AlertHistoryList
from churn_alerts.signing import new_secret
from churn_alerts.url_policy import channel_url_problem
from churn_alerts.users import UserDirectory
from churn_shared.contracts import (
    AlertChannelDisabledV1,
    ChurnAlertRaisedV1,
    ChurnAlertUpdatedV1,
)
from churn_shared.db import utcnow
from churn_shared.errors import BadRequestError, UnprocessableError
from churn_shared.kafka import Envelope
from churn_shared.pagination import decode_cursor, encode_cursor

PRODUCER = "alerts"
#: The actor of what the service does by itself (raising an alert, waking a snoozed one).
SYSTEM_ACTOR = "system"
#: The longest snooze.
MAX_SNOOZE = timedelta(days=90)


def _rules_of(row: AlertRule | None) -> AlertRules:
    if row is None:
        return DEFAULT_RULES
    quiet = None
    if row.quiet_hours_start and row.quiet_hours_end:
        quiet = QuietHours(
            clock_time.fromisoformat(row.quiet_hours_start),
            clock_time.fromisoformat(row.quiet_hours_end),
            row.timezone,
        )
    return AlertRules(
        row.high_risk_threshold,
        row.risk_increase_threshold,
        row.cooldown_minutes,
        high_exit_threshold=row.high_exit_threshold,
        timezone=row.timezone,
        quiet_hours=quiet,
    )


def _rules_read(rules: AlertRules, updated_at: datetime | None) -> AlertRulesRead:
    quiet = rules.quiet_hours
    return AlertRulesRead(
        high_risk_threshold=rules.high_risk_threshold,
        risk_increase_threshold=rules.risk_increase_threshold,
        cooldown_minutes=rules.cooldown_minutes,
        high_exit_threshold=rules.high_exit_threshold,
        timezone=rules.timezone,
        quiet_hours=None if quiet is None else QuietHoursWindow(start=quiet.start, end=quiet.end),
        updated_at=updated_at,
    )


def held_until(rules: AlertRules, now: datetime) -> datetime | None:
    """When a message that would leave ``now`` may leave, if the tenant's quiet hours hold it."""
    return rules.quiet_hours.until(now) if rules.quiet_hours is not None else None


def channel_payload(kind: str, alert: Alert) -> dict[str, Any]:
    """The JSON body a channel of ``kind`` receives for ``alert``."""
    return channel_message(kind, AlertRead.model_validate(alert).model_dump(mode="json"))


#: Alerts a digest message lists at most (``alert_count`` still counts them all).
DIGEST_LISTED_MAX = 500


def digest_content(
    digest: Digest, alerts: Sequence[Alert], console_url: str | None
) -> dict[str, Any]:
    """What a digest message says (see :mod:`churn_alerts.channels`): its alerts grouped by
    risk level, each with its console link."""
    listed = []
    for alert in alerts:
        item = AlertRead.model_validate(alert).model_dump(mode="json")
        item["url"] = f"{console_url}/alerts/{alert.id}" if console_url else None
        listed.append(item)
    return {
        "digest_id": digest.id,
        "period_start": digest.period_start.isoformat(),
        "period_end": digest.period_end.isoformat(),
        "alert_count": digest.alert_count,
        "groups": group_by_risk(listed),
    }


def message_job(
    channel: AlertChannel,
    delivery_id: str,
    attempt: int,
    content: dict[str, Any],
    *,
    digest: bool,
    event: str | None = None,
) -> WebhookJob:
    """The message ``channel`` gets for an alert or a digest (``content`` in its API shape):
    JSON for the webhook kinds, a text and HTML e-mail for ``email``."""
    event = event or ("churn_alert_digest" if digest else "churn_alert")
    if channel.kind == "email":
        email = email_digest(content) if digest else email_alert(content)
        return WebhookJob(
            delivery_id=delivery_id,
            url=channel.url,
            secret=channel.secret,
            kind=channel.kind,
            body=b"",
            attempt=attempt,
            channel_id=channel.id,
            event=event,
            recipients=tuple(channel.recipients or ()),
            email=email,
        )
    body = (
        digest_message(channel.kind, content) if digest else channel_message(channel.kind, content)
    )
    return WebhookJob(
        delivery_id=delivery_id,
        url=channel.url,
        secret=channel.secret,
        kind=channel.kind,
        body=orjson.dumps(body),
        attempt=attempt,
        channel_id=channel.id,
        event=event,
    )


def _next_digest(channel: AlertChannel, rules: AlertRules, now: datetime) -> datetime:
    mode: DeliveryMode = "daily" if channel.delivery_mode == "daily" else "hourly"
    return next_digest_at(mode, now, rules.timezone, channel.digest_hour)


@dataclass(frozen=True, slots=True)
class ScoresOutcome:
    alerts: int
    deliveries: int


@dataclass(frozen=True, slots=True)
class Change:
    """What one lifecycle command asks for, beyond the command itself."""

    command: Command
    assignee_id: str | None = None
    until: datetime | None = None
    outcome: AlertOutcome | None = None
    note: str | None = None


async def forget_customers(session: AsyncSession, deleted: Sequence[tuple[str, str]]) -> int:
    """Drop every alert (with its history and deliveries) and the risk band of these
    ``(tenant_id, customer_id)``: customers the customers service deleted. Idempotent."""
    removed = 0
    for tenant_id, customer_id in sorted(set(deleted)):
        removed += await delete_customer_alerts(session, tenant_id, customer_id)
    return removed


class AlertService:
    def __init__(
        self,
        session: AsyncSession,
        users: UserDirectory | None = None,
        *,
        history: HistoryRepository | None = None,
        alerts: AlertRepository | None = None,
        rules: RuleRepository | None = None,
        channels: ChannelRepository | None = None,
        deliveries: DeliveryRepository | None = None,
        events: EventRepository | None = None,
        bands: BandRepository | None = None,
        digests: DigestRepository | None = None,
    ) -> None:
        """The repositories default to the SQL ones on ``session``; tests pass fakes."""
        self.session = session
        self.users = users
        self.history = history if history is not None else HistoryRepository(session)
        self.alerts = alerts if alerts is not None else AlertRepository(session)
        self.rules = rules if rules is not None else RuleRepository(session)
        self.channels = channels if channels is not None else ChannelRepository(session)
        self.deliveries = deliveries if deliveries is not None else DeliveryRepository(session)
        self.events = events if events is not None else EventRepository(session)
        self.bands = bands if bands is not None else BandRepository(session)
        self.digests = digests if digests is not None else DigestRepository(session)

    # --- scores → alerts -------------------------------------------------------------------

    async def raise_alerts(
        self, scores: Sequence[TenantScore], now: datetime | None = None
    ) -> ScoresOutcome:
        """Store the alerts these scores raise, queue their deliveries and their events."""
        now = now or utcnow()
        live = [s for s in scores if not s.score.backfill]
        if not live:
            return ScoresOutcome(0, 0)
        tenants = {s.tenant_id for s in live}
        rules = {r.tenant_id: _rules_of(r) for r in await self.rules.for_tenants(tenants)}
        longest = max(rules.get(t, DEFAULT_RULES).cooldown for t in tenants)
        last = await self.alerts.last_raised_at(
            ((s.tenant_id, s.score.customer_id) for s in live), since=now - longest
        )
        banded = {
            (s.tenant_id, s.score.customer_id)
            for s in live
            if rules.get(s.tenant_id, DEFAULT_RULES).hysteresis
        }
        bands = await self.bands.for_customers(banded) if banded else {}
        result = plan(live, rules, last, now, {k: b.in_high_band for k, b in bands.items()})
        if result.band_changes:
            await self._move_bands(live, bands, result.band_changes, now)
        planned = result.alerts
        if not planned:
            return ScoresOutcome(0, 0)
        alerts = [
            Alert(
                tenant_id=p.tenant_id,
                customer_id=p.score.customer_id,
                kind=p.kind,
                churn_probability=p.score.churn_probability,
                previous_probability=p.score.previous_probability,
                risk_level=p.score.risk_level,
                model_version=p.score.model_version,
                drivers=[d.model_dump(mode="json") for d in p.score.drivers],
                status="open",
                created_at=now,
            )
            for p in planned
        ]
        await self.alerts.add_all(alerts)
        await self.history.add_all(
            [
                AlertHistory(
                    tenant_id=a.tenant_id,
                    alert_id=a.id,
                    action="raised",
                    actor=SYSTEM_ACTOR,
                    from_status=None,
                    to_status="open",
                    details={"kind": a.kind, "churn_probability": a.churn_probability},
                    created_at=now,
                )
                for a in alerts
            ]
        )
        channels_by_tenant: dict[str, list[AlertChannel]] = {}
        for channel in await self.channels.list_active({a.tenant_id for a in alerts}):
            channels_by_tenant.setdefault(channel.tenant_id, []).append(channel)
        leave_at = {t: held_until(rules.get(t, DEFAULT_RULES), now) or now for t in tenants}
        deliveries: list[Delivery] = []
        waiting: list[DigestItem] = []
        for alert in alerts:
            for channel in channels_by_tenant.get(alert.tenant_id, []):
                if channel.delivery_mode == "immediate":
                    deliveries.append(
                        Delivery(
                            tenant_id=alert.tenant_id,
                            alert_id=alert.id,
                            channel_id=channel.id,
                            next_attempt_at=leave_at[alert.tenant_id],
                            created_at=now,
                        )
                    )
                else:  # waits for the channel's next digest
                    waiting.append(
                        DigestItem(
                            tenant_id=alert.tenant_id,
                            channel_id=channel.id,
                            alert_id=alert.id,
                            created_at=now,
                        )
                    )
        if deliveries:
            await self.deliveries.add_all(deliveries)
        if waiting:
            await self.digests.add_items(waiting)
        await self.events.enqueue(
            ChurnAlertRaisedV1.topic,
            [
                Envelope.wrap(
                    tenant_id=p.tenant_id,
                    producer=PRODUCER,
                    key=a.customer_id,
                    payload=ChurnAlertRaisedV1(
                        alert_id=a.id,
                        customer_id=a.customer_id,
                        kind=p.kind,
                        churn_probability=a.churn_probability,
                        previous_probability=a.previous_probability,
                        risk_level=p.score.risk_level,
                        model_version=a.model_version,
                        drivers=list(p.score.drivers),
                        created_at=a.created_at,
                    ),
                )
                for p, a in zip(planned, alerts, strict=True)
            ],
        )
        return ScoresOutcome(len(alerts), len(deliveries))

    async def _move_bands(
        self,
        scores: Sequence[TenantScore],
        bands: dict[tuple[str, str], RiskBand],
        changes: dict[tuple[str, str], bool],
        now: datetime,
    ) -> None:
        last_probability = {(s.tenant_id, s.score.customer_id): s.score for s in scores}
        rows = []
        for key, in_band in changes.items():
            row = bands.get(key) or RiskBand(
                tenant_id=key[0], customer_id=key[1], in_high_band=in_band, churn_probability=0.0
            )
            row.in_high_band = in_band
            row.churn_probability = last_probability[key].churn_probability
            row.changed_at = now
            rows.append(row)
        await self.bands.save_all(rows)

    # --- alerts --------------------------------------------------------------------------------

    async def list_alerts(
        self, tenant_id: str, *, limit: int, cursor: str | None, filters: AlertFilters
    ) -> AlertPage:
        after = _after(cursor)
        rows = await self.alerts.page(tenant_id, limit=limit + 1, after=after, filters=filters)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id]) if more else None
        )
        return AlertPage(items=[AlertRead.model_validate(r) for r in rows], next_cursor=next_cursor)

    async def get_alert(self, tenant_id: str, alert_id: str) -> AlertRead:
        alert = await self.alerts.get(tenant_id, alert_id)
        if alert is None:
            raise AlertNotFoundError(alert_id)
        return AlertRead.model_validate(alert)

    # --- working an alert ------------------------------------------------------------------

    async def change(
        self, tenant_id: str, alert_id: str, actor: str, change: Change, now: datetime | None = None
    ) -> AlertRead:
        """Apply one lifecycle command to one alert (locked meanwhile); 409 when its state does
        not allow it. The change is recorded in the alert's history and published."""
        now = now or utcnow()
        alert = await self.alerts.get_for_update(tenant_id, alert_id)
        if alert is None:  # before judging the request: another tenant's id is just unknown
            raise AlertNotFoundError(alert_id)
        _check_change(change, now)
        await self._apply(alert, actor, change, now)
        return AlertRead.model_validate(alert)

    async def change_many(
        self,
        tenant_id: str,
        alert_ids: Sequence[str],
        actor: str,
        change: Change,
        now: datetime | None = None,
    ) -> BulkResult:
        """The same command on each alert, each judged on its own: one that is missing or in
        the wrong state is reported, the others change (in one transaction)."""
        now = now or utcnow()
        _check_change(change, now)
        results: dict[str, BulkItemResult] = {}
        # In id order, so two bulk requests over the same alerts lock them in the same order.
        for alert_id in sorted(set(alert_ids)):
            alert = await self.alerts.get_for_update(tenant_id, alert_id)
            if alert is None:
                results[alert_id] = BulkItemResult(id=alert_id, result="not_found")
                continue
            try:
                await self._apply(alert, actor, change, now)
            except InvalidTransitionError as exc:
                results[alert_id] = BulkItemResult(
                    id=alert_id,
                    result="conflict",
                    status=as_status(alert.status),
                    detail=exc.detail,
                )
                continue
            results[alert_id] = BulkItemResult(
                id=alert_id, result="ok", status=as_status(alert.status)
            )
        return BulkResult(items=[results[i] for i in dict.fromkeys(alert_ids)])

    async def assign(
        self, tenant_id: str, alert_id: str, actor: str, user_id: str | None, authorization: str
    ) -> AlertRead:
        """Assign one alert to ``user_id`` (``"me"``: the actor; ``None``: nobody)."""
        if await self.alerts.get(tenant_id, alert_id) is None:  # 404 before asking auth
            raise AlertNotFoundError(alert_id)
        assignee = await self._assignee(actor, user_id, authorization)
        return await self.change(tenant_id, alert_id, actor, Change("assign", assignee_id=assignee))

    async def assign_many(
        self,
        tenant_id: str,
        alert_ids: Sequence[str],
        actor: str,
        user_id: str | None,
        authorization: str,
    ) -> BulkResult:
        assignee = await self._assignee(actor, user_id, authorization)
        return await self.change_many(
            tenant_id, alert_ids, actor, Change("assign", assignee_id=assignee)
        )

    async def _assignee(self, actor: str, user_id: str | None, authorization: str) -> str | None:
        """The assignee's user id. Taking an alert oneself needs no check (the token says who
        one is); anyone else must be an active user of the tenant, which the auth service is
        asked with the caller's own token (:mod:`churn_alerts.users`)."""
        if user_id is None:
            return None
        if user_id in ("me", actor):
            return actor
        if self.users is None:
            raise RuntimeError("no user directory: assignments cannot be checked")
        if not await self.users.is_active_member(user_id, authorization):
            raise UnknownAssigneeError(user_id)
        return user_id

    async def wake_snoozed(self, now: datetime | None = None, limit: int = 500) -> int:
        """Reopen the snoozed alerts whose time has come; how many were woken."""
        now = now or utcnow()
        due = await self.alerts.snoozed_due(now, limit)
        for alert in due:
            await self._apply(alert, SYSTEM_ACTOR, Change("wake"), now)
        return len(due)

    async def _apply(self, alert: Alert, actor: str, change: Change, now: datetime) -> None:
        command = change.command
        before = as_status(alert.status)
        after = next_status(command, before)
        if after is None:
            raise InvalidTransitionError(alert.id, ACTIONS[command], before)
        details: dict[str, Any] = {}
        if command == "assign":
            details = {"assignee_id": change.assignee_id, "previous_assignee_id": alert.assignee_id}
            alert.assignee_id = change.assignee_id
        elif command == "snooze":
            assert change.until is not None
            alert.snoozed_until = change.until
            details = {"until": change.until.isoformat()}
        elif command == "resolve":
            alert.outcome = change.outcome
            alert.resolution_note = change.note
            alert.resolved_at = now
            alert.snoozed_until = None
            details = {"outcome": change.outcome, "note": change.note}
        elif command == "reopen":
            if alert.outcome is not None:
                details = {"previous_outcome": alert.outcome}
            alert.outcome = None
            alert.resolution_note = None
            alert.resolved_at = None
            alert.snoozed_until = None
        else:  # acknowledge, wake
            alert.snoozed_until = None
        alert.status = after
        alert.updated_at = now
        await self.alerts.save(alert)
        read = AlertRead.model_validate(alert)
        await self.history.add_all(
            [
                AlertHistory(
                    tenant_id=alert.tenant_id,
                    alert_id=alert.id,
                    action=ACTIONS[command],
                    actor=actor,
                    from_status=before,
                    to_status=after,
                    details=details,
                    created_at=now,
                )
            ]
        )
        await self.events.enqueue(
            ChurnAlertUpdatedV1.topic,
            [
                Envelope.wrap(
                    tenant_id=alert.tenant_id,
                    producer=PRODUCER,
                    key=alert.customer_id,
                    payload=ChurnAlertUpdatedV1(
                        alert_id=alert.id,
                        customer_id=alert.customer_id,
                        kind=read.kind,
                        risk_level=read.risk_level,
                        action=ACTIONS[command],
                        actor=actor,
                        status=after,
                        assignee_id=alert.assignee_id,
                        snoozed_until=alert.snoozed_until,
                        outcome=read.outcome,
                        note=alert.resolution_note,
                        resolved_at=alert.resolved_at,
                        created_at=alert.created_at,
                        updated_at=now,
                    ),
                )
            ],
        )

    async def history_of(self, tenant_id: str, alert_id: str) -> AlertHistoryList:
        if await self.alerts.get(tenant_id, alert_id) is None:
            raise AlertNotFoundError(alert_id)
        rows = await self.history.for_alert(tenant_id, alert_id)
        return AlertHistoryList(items=[AlertHistoryRead.model_validate(r) for r in rows])

    async def deliveries_of(self, tenant_id: str, alert_id: str) -> AlertDeliveries:
        if await self.alerts.get(tenant_id, alert_id) is None:
            raise AlertNotFoundError(alert_id)
        return AlertDeliveries(
            items=[
                AlertDeliveryRead(
                    id=d.id,
                    channel_id=c.id,
                    channel_name=c.name,
                    channel_kind=AlertChannelRead.model_validate(c).kind,
                    digest_id=d.digest_id,
                    status=d.status,
                    attempts=[DeliveryAttemptRead.model_validate(a) for a in attempts],
                    delivered_at=d.delivered_at,
                    created_at=d.created_at,
                )
                for d, c, attempts in await self.deliveries.for_alert(tenant_id, alert_id)
            ]
        )

    async def outcomes(
        self, tenant_id: str, resolved_from: datetime | None, resolved_to: datetime | None
    ) -> AlertOutcomes:
        rows = await self.alerts.outcomes(tenant_id, resolved_from, resolved_to)
        return AlertOutcomes(
            items=[
                AlertOutcomeRead.model_validate(
                    {
                        "alert_id": a.id,
                        "customer_id": a.customer_id,
                        "kind": a.kind,
                        "outcome": a.outcome,
                        "churn_probability": a.churn_probability,
                        "model_version": a.model_version,
                        "created_at": a.created_at,
                        "resolved_at": a.resolved_at,
                    }
                )
                for a in rows
            ]
        )

    # --- rules ---------------------------------------------------------------------------------

    async def get_rules(self, tenant_id: str) -> AlertRulesRead:
        row = await self.rules.get(tenant_id)
        return _rules_read(_rules_of(row), row.updated_at if row is not None else None)

    async def update_rules(self, tenant_id: str, update: AlertRulesUpdate) -> AlertRulesRead:
        row = await self.rules.get(tenant_id) or AlertRule(tenant_id=tenant_id)
        row.high_risk_threshold = update.high_risk_threshold
        row.risk_increase_threshold = update.risk_increase_threshold
        row.cooldown_minutes = update.cooldown_minutes
        if update.high_exit_threshold is None and row.high_exit_threshold is not None:
            await self.bands.clear(tenant_id)  # they would be stale if it is turned on again
        row.high_exit_threshold = update.high_exit_threshold
        zone_changed = row.timezone != update.timezone
        row.timezone = update.timezone
        quiet = update.quiet_hours
        row.quiet_hours_start = quiet.start.strftime("%H:%M") if quiet else None
        row.quiet_hours_end = quiet.end.strftime("%H:%M") if quiet else None
        now = utcnow()
        row.updated_at = now
        row = await self.rules.save(row)
        rules = _rules_of(row)
        if zone_changed:  # digests are due at local times: move them to the new zone's
            channels = await self.channels.in_digest_mode(tenant_id)
            for channel in channels:
                channel.next_digest_at = _next_digest(channel, rules, now)
            await self.channels.save_all(channels)
        return _rules_read(rules, row.updated_at)

    # --- channels ------------------------------------------------------------------------------

    async def create_channel(
        self,
        tenant_id: str,
        data: AlertChannelCreate,
        *,
        allow_internal_urls: bool,
        email_enabled: bool = False,
        now: datetime | None = None,
    ) -> AlertChannelCreated:
        """``email_enabled``: an SMTP server is configured (e-mail channels are refused
        otherwise). E-mail recipients are not URLs: the URL policy does not apply to them (the
        SMTP server is the operator's)."""
        if data.kind == "email":
            if not email_enabled:
                raise InvalidChannelUrlError(
                    "e-mail is not configured on this server (CHURN_ALERTS_SMTP_HOST)"
                )
            recipients = list(data.recipients or [])
            url = mailto_url(recipients)
            name = data.name or recipients[0]
        else:
            url = (data.url or "").strip()
            problem = channel_url_problem(
                url, allow_internal=allow_internal_urls
            ) or kind_url_problem(data.kind, url, allow_internal=allow_internal_urls)
            if problem:
                raise InvalidChannelUrlError(problem)
            recipients = None
            name = data.name or (urlsplit(url).hostname or url)
        now = now or utcnow()
        channel = AlertChannel(
            tenant_id=tenant_id,
            kind=data.kind,
            name=name,
            url=url,
            recipients=recipients,
            secret=new_secret(),
            active=True,
            created_at=now,
            delivery_mode=data.delivery_mode,
            digest_hour=data.digest_hour,
        )
        if data.delivery_mode != "immediate":
            rules = _rules_of(await self.rules.get(tenant_id))
            channel.next_digest_at = _next_digest(channel, rules, now)
        await self.channels.add(channel)
        return AlertChannelCreated.model_validate(channel)

    async def list_channels(self, tenant_id: str) -> AlertChannelList:
        rows = await self.channels.list_active([tenant_id])
        return AlertChannelList(items=[AlertChannelRead.model_validate(c) for c in rows])

    async def enable_channel(self, tenant_id: str, channel_id: str) -> AlertChannelRead:
        """Deliver to a disabled channel again (its dead deliveries stay dead until retried)."""
        channel = await self.channels.get_active(tenant_id, channel_id)
        if channel is None:
            raise ChannelNotFoundError(channel_id)
        channel.disabled_at = None
        channel.disabled_reason = None
        channel.consecutive_dead = 0
        await self.channels.save_all([channel])
        return AlertChannelRead.model_validate(channel)

    async def test_channel(
        self, tenant_id: str, channel_id: str, sender: ChannelSender
    ) -> ChannelTestResult:
        """Send a test message (an example alert, ``"test": true``) and report the answer. Not
        stored, not retried, not paced; signed like any delivery."""
        channel = await self.channels.get_active(tenant_id, channel_id)
        if channel is None:
            raise ChannelNotFoundError(channel_id)
        now = utcnow()
        example = {
            "id": f"test-{uuid.uuid4()}",
            "customer_id": "example-customer",
            "kind": "high_risk",
            "churn_probability": 0.91,
            "previous_probability": 0.55,
            "risk_level": "high",
            "model_version": "test",
            "drivers": [],
            "status": "open",
            "created_at": now.isoformat(),
            "test": True,
        }
        job = message_job(
            channel, str(example["id"]), 1, example, event="churn_alert_test", digest=False
        )
        started = time.monotonic()
        result = await sender.send(job)
        return ChannelTestResult(
            delivered=result.ok,
            outcome=result.outcome,
            status_code=result.status_code,
            error=result.error,
            duration_ms=round((time.monotonic() - started) * 1000),
        )

    # --- deliveries ----------------------------------------------------------------------------

    async def list_deliveries(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: str | None,
        status: str | None,
        channel_id: str | None,
    ) -> DeliveryPage:
        after = _after(cursor)
        rows = await self.deliveries.page(
            tenant_id, limit=limit + 1, after=after, status=status, channel_id=channel_id
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            encode_cursor([rows[-1].created_at.isoformat(), rows[-1].id]) if more else None
        )
        return DeliveryPage(
            items=[DeliveryRead.model_validate(r) for r in rows], next_cursor=next_cursor
        )

    async def retry_delivery(self, tenant_id: str, delivery_id: str) -> DeliveryRead:
        """Replay a dead (or failed, or unknown) delivery: due now, attempts from zero, the same
        id (``webhook-id``), so a receiver that got it after all can drop it."""
        delivery = await self.deliveries.get_for_update(tenant_id, delivery_id)
        if delivery is None:
            raise DeliveryNotFoundError(delivery_id)
        if delivery.status not in ("dead", "failed", "unknown"):
            raise DeliveryNotReplayableError(delivery_id, f"it is {delivery.status}")
        channel = await self.channels.get_active(tenant_id, delivery.channel_id)
        if channel is None:
            raise DeliveryNotReplayableError(delivery_id, "its channel was deleted")
        if channel.disabled_at is not None:
            raise DeliveryNotReplayableError(
                delivery_id, "its channel is disabled; enable the channel first"
            )
        delivery.status = "pending"
        delivery.attempts = 0
        delivery.next_attempt_at = utcnow()
        delivery.last_error = None
        await self.deliveries.save(delivery)
        return DeliveryRead.model_validate(delivery)

    async def delete_channel(self, tenant_id: str, channel_id: str) -> None:
        channel = await self.channels.get_active(tenant_id, channel_id)
        if channel is None:
            raise ChannelNotFoundError(channel_id)
        await self.channels.deactivate(channel, "channel deleted", utcnow())


class ChannelSender(Protocol):
    async def send(self, job: WebhookJob) -> DeliveryResult: ...


def _after(cursor: str | None) -> tuple[datetime, str] | None:
    """A ``(created_at, id)`` keyset cursor."""
    values = decode_cursor(cursor, 2)
    if values is None:
        return None
    try:
        after = (datetime.fromisoformat(str(values[0])), str(values[1]))
    except ValueError as exc:
        raise BadRequestError("The cursor is not valid.") from exc
    if after[0].tzinfo is None:
        raise BadRequestError("The cursor is not valid.")
    return after


def _check_change(change: Change, now: datetime) -> None:
    if change.command == "snooze":
        if change.until is None or change.until <= now:
            raise UnprocessableError("A snooze must end in the future.")
        if change.until - now > MAX_SNOOZE:
            raise UnprocessableError(f"A snooze lasts at most {MAX_SNOOZE.days} days.")
    if change.command == "resolve" and change.outcome is None:
        raise UnprocessableError("A resolution needs an outcome.")


# --- deliveries --------------------------------------------------------------------------------


class DeliveryService:
    """Claims due deliveries and records what became of them; the caller owns both transactions
    and does the HTTP in between, so no transaction stays open across the network.

    Claiming paces each channel (:class:`~churn_alerts.delivery.Pace`, state in the channel's
    ``paced_until``, updated under the channel's row lock so replicas share it): a delivery
    whose channel has no room now is moved to the time it has, without counting an attempt.
    """

    def __init__(
        self,
        session: AsyncSession,
        policy: RetryPolicy,
        *,
        webhook_pace: Pace | None = None,
        disable_after_dead: int = 5,
        console_url: str | None = None,
    ) -> None:
        self.session = session
        self.console_url = console_url
        self.digests = DigestRepository(session)
        self.policy = policy
        self.webhook_pace = webhook_pace or Pace(burst=10, interval_seconds=0.1)
        self.disable_after_dead = disable_after_dead
        self.deliveries = DeliveryRepository(session)
        self.channels = ChannelRepository(session)
        self.events = EventRepository(session)
        self.rules = RuleRepository(session)
        #: The earliest time a delivery held back by pacing in the last claim may leave.
        self.next_paced_at: datetime | None = None

    def pace_of(self, kind: str) -> Pace:
        return KIND_PACES.get(kind, self.webhook_pace)

    async def claim_due(self, limit: int, now: datetime | None = None) -> list[WebhookJob]:
        now = now or utcnow()
        self.next_paced_at = None
        jobs: list[WebhookJob] = []
        lease_until = now + timedelta(seconds=self.policy.lease_seconds)
        due = await self.deliveries.claim_due(now, limit)
        channels = await self.channels.lock_many({d.channel.id for d in due})
        rules = {
            r.tenant_id: _rules_of(r)
            for r in await self.rules.for_tenants({d.delivery.tenant_id for d in due})
        }
        for item in due:
            d = item.delivery
            channel = channels.get(d.channel_id, item.channel)
            if not channel.active:
                await self.deliveries.update_pending(
                    d.id, status="failed", last_error="channel deleted", next_attempt_at=now
                )
                continue
            if channel.disabled_at is not None:
                await self.deliveries.update_pending(
                    d.id, status="dead", last_error="channel disabled", next_attempt_at=now
                )
                continue
            if d.attempts >= self.policy.max_attempts:
                await self.deliveries.update_pending(d.id, status="dead", next_attempt_at=now)
                continue
            quiet_until = held_until(rules.get(d.tenant_id, DEFAULT_RULES), now)
            if quiet_until is not None:  # a retry or a replay inside the tenant's quiet hours
                await self.deliveries.update_pending(d.id, next_attempt_at=quiet_until)
                continue
            admitted, when = self.pace_of(channel.kind).admit(channel.paced_until, now)
            if not admitted:
                await self.deliveries.update_pending(d.id, next_attempt_at=when)
                if self.next_paced_at is None or when < self.next_paced_at:
                    self.next_paced_at = when
                continue
            channel.paced_until = when
            attempt = d.attempts + 1
            await self.deliveries.update_pending(
                d.id, attempts=attempt, next_attempt_at=lease_until
            )
            if item.alert is not None:
                content = AlertRead.model_validate(item.alert).model_dump(mode="json")
                jobs.append(message_job(channel, d.id, attempt, content, digest=False))
            else:
                content = await self._digest_content(d)
                jobs.append(message_job(channel, d.id, attempt, content, digest=True))
        await self.channels.save_all(list(channels.values()))
        return jobs

    async def _digest_content(self, delivery: Delivery) -> dict[str, Any]:
        assert delivery.digest_id is not None
        digest = (await self.digests.get_many([delivery.digest_id]))[delivery.digest_id]
        alerts = await self.digests.contents(digest.id, DIGEST_LISTED_MAX)
        return digest_content(digest, alerts, self.console_url)

    async def record(self, results: Sequence[DeliveryResult], now: datetime | None = None) -> None:
        now = now or utcnow()
        known = {d.id: d for d in await self.deliveries.get_many([r.delivery_id for r in results])}
        await self.deliveries.add_attempts(
            [
                DeliveryAttempt(
                    tenant_id=d.tenant_id,
                    delivery_id=d.id,
                    alert_id=d.alert_id,
                    channel_id=d.channel_id,
                    attempt=r.attempt,
                    outcome=r.outcome,
                    status_code=r.status_code,
                    error=r.error[:1000] if r.error else None,
                    attempted_at=now,
                )
                for r in results
                if (d := known.get(r.delivery_id)) is not None
            ]
        )
        delivered: set[str] = set()
        dead: list[str] = []
        held: dict[str, datetime] = {}
        for r in results:
            error = (r.error or "")[:1000]
            channel_id = known[r.delivery_id].channel_id if r.delivery_id in known else None
            if r.outcome == "delivered":
                await self.deliveries.update_pending(
                    r.delivery_id, status="delivered", delivered_at=now, last_error=None
                )
                if channel_id:
                    delivered.add(channel_id)
            elif r.outcome == "refused":
                await self.deliveries.update_pending(
                    r.delivery_id, status="failed", last_error=error
                )
            elif r.outcome == "unknown":
                await self.deliveries.update_pending(
                    r.delivery_id, status="unknown", last_error=error
                )
            elif r.outcome == "not_sent":
                await self.deliveries.update_pending(
                    r.delivery_id,
                    attempts=max(r.attempt - 1, 0),
                    next_attempt_at=now,
                    last_error=error,
                )
            elif r.outcome == "rejected" or r.attempt >= self.policy.max_attempts:
                await self.deliveries.update_pending(r.delivery_id, status="dead", last_error=error)
                if channel_id:
                    dead.append(channel_id)
            else:
                retry_at = self.policy.next_attempt(r, now)
                await self.deliveries.update_pending(
                    r.delivery_id, next_attempt_at=retry_at, last_error=error
                )
                if r.retry_after_seconds is not None and channel_id:
                    held[channel_id] = max(retry_at, held.get(channel_id, retry_at))
        if delivered or dead or held:
            await self._channel_health(delivered, dead, held, now)

    async def _channel_health(
        self, delivered: set[str], dead: list[str], held: dict[str, datetime], now: datetime
    ) -> None:
        """A delivered delivery resets its channel's count of dead ones; each dead one adds to
        it, and at ``disable_after_dead`` the channel is disabled and the tenant told
        (``AlertChannelDisabledV1``, shown live). A ``Retry-After`` holds the whole channel."""
        channels = await self.channels.lock_many(delivered | set(dead) | set(held))
        disabled: list[AlertChannel] = []
        for channel_id, channel in channels.items():
            if channel_id in delivered:
                channel.consecutive_dead = 0
            channel.consecutive_dead += dead.count(channel_id)
            if channel_id in held and (channel.paced_until or now) < held[channel_id]:
                channel.paced_until = held[channel_id]
            if (
                channel.disabled_at is None
                and channel.active
                and channel.consecutive_dead >= self.disable_after_dead
            ):
                channel.disabled_at = now
                channel.disabled_reason = (
                    f"{channel.consecutive_dead} deliveries in a row went dead"
                )
                disabled.append(channel)
        await self.channels.save_all(list(channels.values()))
        if disabled:
            await self.events.enqueue(
                AlertChannelDisabledV1.topic,
                [
                    Envelope.wrap(
                        tenant_id=c.tenant_id,
                        producer=PRODUCER,
                        key=c.id,
                        payload=AlertChannelDisabledV1(
                            channel_id=c.id,
                            name=c.name,
                            kind=AlertChannelRead.model_validate(c).kind,
                            reason=c.disabled_reason or "",
                            dead_deliveries=c.consecutive_dead,
                            disabled_at=now,
                        ),
                    )
                    for c in disabled
                ],
            )


class DigestService:
    """Assembles the digests that are due: for each digest-mode channel whose time has come,
    the alerts waiting for it become one :class:`~churn_alerts.models.Digest` with one delivery
    (held by quiet hours like any other), and the channel's next digest time is set. A channel
    with nothing waiting sends nothing. The caller owns the transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.digests = DigestRepository(session)
        self.deliveries = DeliveryRepository(session)
        self.channels = ChannelRepository(session)
        self.rules = RuleRepository(session)

    async def assemble_due(self, now: datetime | None = None, limit: int = 200) -> int:
        """How many digests were assembled (their deliveries are due, or held)."""
        now = now or utcnow()
        channels = await self.digests.channels_due(now, limit)
        if not channels:
            return 0
        rules = {
            r.tenant_id: _rules_of(r)
            for r in await self.rules.for_tenants({c.tenant_id for c in channels})
        }
        assembled = 0
        for channel in channels:
            tenant_rules = rules.get(channel.tenant_id, DEFAULT_RULES)
            due_at = channel.next_digest_at
            channel.next_digest_at = _next_digest(channel, tenant_rules, now)
            if due_at is None:  # not scheduled yet (a channel from before digests)
                continue
            if not await self.digests.has_waiting(channel.id, now):
                continue  # nothing new: no message
            start = await self.digests.last_period_end(channel.id) or channel.created_at
            digest = Digest(
                tenant_id=channel.tenant_id,
                channel_id=channel.id,
                period_start=start,
                period_end=now,
                alert_count=0,
                created_at=now,
            )
            await self.digests.add(digest)
            digest.alert_count = await self.digests.take_waiting(channel.id, digest.id, now)
            await self.digests.add(digest)
            await self.deliveries.add_all(
                [
                    Delivery(
                        tenant_id=channel.tenant_id,
                        digest_id=digest.id,
                        channel_id=channel.id,
                        next_attempt_at=held_until(tenant_rules, now) or now,
                        created_at=now,
                    )
                ]
            )
            assembled += 1
        await self.channels.save_all(channels)
        return assembled
