"""All SQL of the alerts service. Repositories add, flush and query; they never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

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
    outbox,
)
from churn_shared.kafka import Envelope, enqueue


class RuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str) -> AlertRule | None:
        return await self.session.get(AlertRule, tenant_id)

    async def for_tenants(self, tenant_ids: Iterable[str]) -> list[AlertRule]:
        ids = list(set(tenant_ids))
        if not ids:
            return []
        result = await self.session.exec(select(AlertRule).where(col(AlertRule.tenant_id).in_(ids)))
        return list(result.all())

    async def save(self, rule: AlertRule) -> AlertRule:
        self.session.add(rule)
        await self.session.flush()
        return rule


class BandRepository:
    """The high-band state of customers of tenants with hysteresis."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_customers(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], RiskBand]:
        pairs = set(keys)
        if not pairs:
            return {}
        result = await self.session.exec(
            select(RiskBand).where(
                col(RiskBand.tenant_id).in_({t for t, _ in pairs}),
                col(RiskBand.customer_id).in_({c for _, c in pairs}),
            )
        )
        return {
            (b.tenant_id, b.customer_id): b
            for b in result.all()
            if (b.tenant_id, b.customer_id) in pairs
        }

    async def save_all(self, bands: Sequence[RiskBand]) -> None:
        self.session.add_all(bands)
        await self.session.flush()

    async def clear(self, tenant_id: str) -> None:
        """Forget the tenant's bands (hysteresis turned off: they would go stale)."""
        await self.session.exec(sa.delete(RiskBand).where(col(RiskBand.tenant_id) == tenant_id))


class ChannelRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, channel: AlertChannel) -> AlertChannel:
        self.session.add(channel)
        await self.session.flush()
        return channel

    async def lock_many(self, channel_ids: Iterable[str]) -> dict[str, AlertChannel]:
        """The channels, locked in id order (so concurrent lockers cannot deadlock)."""
        ids = sorted(set(channel_ids))
        if not ids:
            return {}
        result = await self.session.exec(
            select(AlertChannel)
            .where(col(AlertChannel.id).in_(ids))
            .order_by(col(AlertChannel.id))
            .with_for_update()
        )
        return {c.id: c for c in result.all()}

    async def save_all(self, channels: Sequence[AlertChannel]) -> None:
        self.session.add_all(channels)
        await self.session.flush()

    async def get_active(self, tenant_id: str, channel_id: str) -> AlertChannel | None:
        result = await self.session.exec(
            select(AlertChannel).where(
                AlertChannel.tenant_id == tenant_id,
                AlertChannel.id == channel_id,
                col(AlertChannel.active).is_(True),
            )
        )
        return result.first()

    async def list_active(self, tenant_ids: Iterable[str]) -> list[AlertChannel]:
        ids = list(set(tenant_ids))
        if not ids:
            return []
        result = await self.session.exec(
            select(AlertChannel)
            .where(col(AlertChannel.tenant_id).in_(ids), col(AlertChannel.active).is_(True))
            .order_by(col(AlertChannel.created_at), col(AlertChannel.id))
        )
        return list(result.all())

    async def in_digest_mode(self, tenant_id: str) -> list[AlertChannel]:
        result = await self.session.exec(
            select(AlertChannel).where(
                AlertChannel.tenant_id == tenant_id,
                col(AlertChannel.active).is_(True),
                col(AlertChannel.delivery_mode) != "immediate",
            )
        )
        return list(result.all())

    async def deactivate(self, channel: AlertChannel, error: str, now: datetime) -> None:
        """Retire a channel; its undelivered deliveries are given up."""
        channel.active = False
        self.session.add(channel)
        await self.session.exec(
            sa.update(Delivery)
            .where(
                col(Delivery.tenant_id) == channel.tenant_id,
                col(Delivery.channel_id) == channel.id,
                col(Delivery.status) == "pending",
            )
            .values(status="failed", last_error=error, next_attempt_at=now)
        )
        await self.session.flush()


class AlertRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str, alert_id: str) -> Alert | None:
        result = await self.session.exec(
            select(Alert).where(Alert.tenant_id == tenant_id, Alert.id == alert_id)
        )
        return result.first()

    async def get_for_update(self, tenant_id: str, alert_id: str) -> Alert | None:
        """The alert, locked until the transaction ends (two people acting on it queue up)."""
        result = await self.session.exec(
            select(Alert)
            .where(Alert.tenant_id == tenant_id, Alert.id == alert_id)
            .with_for_update()
        )
        return result.first()

    async def page(
        self,
        tenant_id: str,
        *,
        limit: int,
        after: tuple[datetime, str] | None,
        filters: AlertFilters,
    ) -> list[Alert]:
        """Newest first, keyset-paginated on ``(created_at, id)``."""
        query = select(Alert).where(Alert.tenant_id == tenant_id)
        f = filters
        if f.customer_id is not None:
            query = query.where(Alert.customer_id == f.customer_id)
        if f.kind is not None:
            query = query.where(Alert.kind == f.kind)
        if f.status is not None:
            query = query.where(Alert.status == f.status)
        if f.risk_level is not None:
            query = query.where(Alert.risk_level == f.risk_level)
        if f.unassigned:  # ``assignee=none``
            query = query.where(col(Alert.assignee_id).is_(None))
        elif f.assignee_id is not None:
            query = query.where(Alert.assignee_id == f.assignee_id)
        if f.created_from is not None:
            query = query.where(col(Alert.created_at) >= f.created_from)
        if f.created_to is not None:
            query = query.where(col(Alert.created_at) < f.created_to)
        if after is not None:
            created_at, alert_id = after
            query = query.where(
                sa.or_(
                    col(Alert.created_at) < created_at,
                    sa.and_(col(Alert.created_at) == created_at, col(Alert.id) < alert_id),
                )
            )
        query = query.order_by(col(Alert.created_at).desc(), col(Alert.id).desc()).limit(limit)
        result = await self.session.exec(query)
        return list(result.all())

    async def last_raised_at(
        self, keys: Iterable[tuple[str, str]], since: datetime
    ) -> dict[tuple[str, str, str], datetime]:
        """When each kind was last raised since ``since`` for the given (tenant, customer) pairs,
        in one query."""
        pairs = set(keys)
        if not pairs:
            return {}
        tenants = {t for t, _ in pairs}
        customers = {c for _, c in pairs}
        last = sa.func.max(col(Alert.created_at)).label("last_at")
        query = (
            select(col(Alert.tenant_id), col(Alert.customer_id), col(Alert.kind), last)
            .where(
                col(Alert.tenant_id).in_(tenants),
                col(Alert.customer_id).in_(customers),
                col(Alert.created_at) >= since,
            )
            .group_by(col(Alert.tenant_id), col(Alert.customer_id), col(Alert.kind))
        )
        rows = (await self.session.exec(query)).all()
        return {
            (tenant_id, customer_id, kind): last_at
            for tenant_id, customer_id, kind, last_at in rows
            if (tenant_id, customer_id) in pairs and last_at is not None
        }

    async def add_all(self, alerts: Sequence[Alert]) -> None:
        self.session.add_all(alerts)
        await self.session.flush()

    async def save(self, alert: Alert) -> None:
        self.session.add(alert)
        await self.session.flush()

    async def snoozed_due(self, now: datetime, limit: int) -> list[Alert]:
        """Snoozed alerts whose time has come, locked (skipping those another worker holds)."""
        result = await self.session.exec(
            select(Alert)
            .where(col(Alert.status) == "snoozed", col(Alert.snoozed_until) <= now)
            .order_by(col(Alert.snoozed_until))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(result.all())

    async def outcomes(
        self, tenant_id: str, resolved_from: datetime | None, resolved_to: datetime | None
    ) -> list[Alert]:
        """Resolved alerts with their outcome, oldest resolution first."""
        query = select(Alert).where(
            Alert.tenant_id == tenant_id,
            col(Alert.status) == "resolved",
            col(Alert.outcome).is_not(None),
        )
        if resolved_from is not None:
            query = query.where(col(Alert.resolved_at) >= resolved_from)
        if resolved_to is not None:
            query = query.where(col(Alert.resolved_at) < resolved_to)
        query = query.order_by(col(Alert.resolved_at), col(Alert.id))
        return list((await self.session.exec(query)).all())


@dataclass(frozen=True, slots=True)
class AlertFilters:
    customer_id: str | None = None
    kind: str | None = None
    status: str | None = None
    risk_level: str | None = None
    assignee_id: str | None = None
    #: Only alerts nobody is assigned to (``assignee=none``).
    unassigned: bool = False
    created_from: datetime | None = None
    created_to: datetime | None = None


class HistoryRepository:
    """The append-only audit trail: rows are added, never changed or deleted."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_all(self, entries: Sequence[AlertHistory]) -> None:
        self.session.add_all(entries)
        await self.session.flush()

    async def for_alert(self, tenant_id: str, alert_id: str) -> list[AlertHistory]:
        result = await self.session.exec(
            select(AlertHistory)
            .where(AlertHistory.tenant_id == tenant_id, AlertHistory.alert_id == alert_id)
            .order_by(col(AlertHistory.created_at), col(AlertHistory.id))
        )
        return list(result.all())


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what is needed to send it: its alert, or (``alert`` ``None``)
    its digest, read by :meth:`DigestRepository.contents`."""

    delivery: Delivery
    alert: Alert | None
    channel: AlertChannel


class DigestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_items(self, items: Sequence[DigestItem]) -> None:
        self.session.add_all(items)
        await self.session.flush()

    async def channels_due(self, now: datetime, limit: int) -> list[AlertChannel]:
        """Active digest-mode channels whose digest is due or not yet scheduled, locked
        (skipping those another worker holds)."""
        result = await self.session.exec(
            select(AlertChannel)
            .where(
                col(AlertChannel.active).is_(True),
                col(AlertChannel.delivery_mode) != "immediate",
                sa.or_(
                    col(AlertChannel.next_digest_at).is_(None),
                    col(AlertChannel.next_digest_at) <= now,
                ),
            )
            .order_by(col(AlertChannel.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list(result.all())

    async def last_period_end(self, channel_id: str) -> datetime | None:
        result = await self.session.exec(
            select(sa.func.max(col(Digest.period_end))).where(Digest.channel_id == channel_id)
        )
        return result.one()

    async def add(self, digest: Digest) -> None:
        self.session.add(digest)
        await self.session.flush()

    async def has_waiting(self, channel_id: str, until: datetime) -> bool:
        result = await self.session.exec(
            select(DigestItem.id)
            .where(
                col(DigestItem.channel_id) == channel_id,
                col(DigestItem.digest_id).is_(None),
                col(DigestItem.created_at) <= until,
            )
            .limit(1)
        )
        return result.first() is not None

    async def take_waiting(self, channel_id: str, digest_id: str, until: datetime) -> int:
        """Put the channel's waiting items created up to ``until`` into the digest."""
        result = await self.session.exec(
            sa.update(DigestItem)
            .where(
                col(DigestItem.channel_id) == channel_id,
                col(DigestItem.digest_id).is_(None),
                col(DigestItem.created_at) <= until,
            )
            .values(digest_id=digest_id)
        )
        return int(result.rowcount)

    async def get_many(self, digest_ids: Iterable[str]) -> dict[str, Digest]:
        ids = list(set(digest_ids))
        if not ids:
            return {}
        result = await self.session.exec(select(Digest).where(col(Digest.id).in_(ids)))
        return {d.id: d for d in result.all()}

    async def contents(self, digest_id: str, limit: int) -> list[Alert]:
        """The digest's alerts, the most probable first, at most ``limit``."""
        result = await self.session.exec(
            select(Alert)
            .join(DigestItem, col(DigestItem.alert_id) == col(Alert.id))
            .where(DigestItem.digest_id == digest_id)
            .order_by(col(Alert.churn_probability).desc(), col(Alert.id))
            .limit(limit)
        )
        return list(result.all())


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_all(self, deliveries: Sequence[Delivery]) -> None:
        self.session.add_all(deliveries)
        await self.session.flush()

    async def claim_due(self, now: datetime, limit: int) -> list[DueDelivery]:
        """Lock due pending deliveries (skipping rows another worker holds)."""
        due = (
            await self.session.exec(
                select(Delivery)
                .where(col(Delivery.status) == "pending", col(Delivery.next_attempt_at) <= now)
                .order_by(col(Delivery.next_attempt_at))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        if not due:
            return []
        alert_ids = {d.alert_id for d in due if d.alert_id is not None}
        channel_ids = {d.channel_id for d in due}
        alerts = {
            a.id: a
            for a in (await self.session.exec(select(Alert).where(col(Alert.id).in_(alert_ids))))
        }
        channels = {
            c.id: c
            for c in (
                await self.session.exec(
                    select(AlertChannel).where(col(AlertChannel.id).in_(channel_ids))
                )
            )
        }
        return [
            DueDelivery(
                d, alerts[d.alert_id] if d.alert_id is not None else None, channels[d.channel_id]
            )
            for d in due
        ]

    async def get(self, delivery_id: str) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def get_many(self, delivery_ids: Iterable[str]) -> list[Delivery]:
        ids = list(set(delivery_ids))
        if not ids:
            return []
        result = await self.session.exec(select(Delivery).where(col(Delivery.id).in_(ids)))
        return list(result.all())

    async def for_alert(
        self, tenant_id: str, alert_id: str
    ) -> list[tuple[Delivery, AlertChannel, list[DeliveryAttempt]]]:
        """The alert's deliveries (oldest first), its own and those of the digests it went out
        in, each with its channel and attempts."""
        digests = select(DigestItem.digest_id).where(
            DigestItem.tenant_id == tenant_id,
            DigestItem.alert_id == alert_id,
            col(DigestItem.digest_id).is_not(None),
        )
        rows = (
            await self.session.exec(
                select(Delivery, AlertChannel)
                .join(AlertChannel, col(AlertChannel.id) == col(Delivery.channel_id))
                .where(
                    Delivery.tenant_id == tenant_id,
                    sa.or_(
                        col(Delivery.alert_id) == alert_id, col(Delivery.digest_id).in_(digests)
                    ),
                )
                .order_by(col(Delivery.created_at), col(Delivery.id))
            )
        ).all()
        attempts = (
            await self.session.exec(
                select(DeliveryAttempt)
                .where(
                    DeliveryAttempt.tenant_id == tenant_id,
                    col(DeliveryAttempt.delivery_id).in_([d.id for d, _ in rows]),
                )
                .order_by(col(DeliveryAttempt.attempted_at), col(DeliveryAttempt.attempt))
            )
        ).all()
        by_delivery: dict[str, list[DeliveryAttempt]] = {}
        for a in attempts:
            by_delivery.setdefault(a.delivery_id, []).append(a)
        return [(d, c, by_delivery.get(d.id, [])) for d, c in rows]

    async def page(
        self,
        tenant_id: str,
        *,
        limit: int,
        after: tuple[datetime, str] | None,
        status: str | None,
        channel_id: str | None,
    ) -> list[Delivery]:
        """Newest first, keyset-paginated on ``(created_at, id)``."""
        query = select(Delivery).where(Delivery.tenant_id == tenant_id)
        if status is not None:
            query = query.where(Delivery.status == status)
        if channel_id is not None:
            query = query.where(Delivery.channel_id == channel_id)
        if after is not None:
            created_at, delivery_id = after
            query = query.where(
                sa.or_(
                    col(Delivery.created_at) < created_at,
                    sa.and_(col(Delivery.created_at) == created_at, col(Delivery.id) < delivery_id),
                )
            )
        query = query.order_by(col(Delivery.created_at).desc(), col(Delivery.id).desc())
        return list((await self.session.exec(query.limit(limit))).all())

    async def get_for_update(self, tenant_id: str, delivery_id: str) -> Delivery | None:
        result = await self.session.exec(
            select(Delivery)
            .where(Delivery.tenant_id == tenant_id, Delivery.id == delivery_id)
            .with_for_update()
        )
        return result.first()

    async def save(self, delivery: Delivery) -> None:
        self.session.add(delivery)
        await self.session.flush()

    async def add_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        self.session.add_all(attempts)
        await self.session.flush()

    async def update_pending(self, delivery_id: str, **values: Any) -> None:
        """Change a delivery that is still pending (a deleted channel may have failed it)."""
        await self.session.exec(
            sa.update(Delivery)
            .where(col(Delivery.id) == delivery_id, col(Delivery.status) == "pending")
            .values(**values)
        )


class EventRepository:
    """The service's outbox (consumed event ids are claimed by the Kafka handler)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def enqueue(self, topic: str, envelopes: Sequence[Envelope]) -> None:
        await enqueue(self.session, outbox, topic, envelopes)


async def delete_customer_alerts(session: AsyncSession, tenant_id: str, customer_id: str) -> int:
    """Delete a customer's alerts with their history, digest entries, deliveries and delivery
    attempts, and the customer's risk band; how many alerts went. (A digest already sent keeps
    its text: it is a record of what was delivered.)"""
    conn = await session.connection()
    alerts = Alert.__table__  # type: ignore[attr-defined]
    ids = list(
        (
            await conn.execute(
                sa.select(alerts.c.id).where(
                    alerts.c.tenant_id == tenant_id, alerts.c.customer_id == customer_id
                )
            )
        ).scalars()
    )
    if ids:
        deliveries = Delivery.__table__  # type: ignore[attr-defined]
        attempts = DeliveryAttempt.__table__  # type: ignore[attr-defined]
        delivery_ids = sa.select(deliveries.c.id).where(deliveries.c.alert_id.in_(ids))
        await conn.execute(sa.delete(attempts).where(attempts.c.delivery_id.in_(delivery_ids)))
        for model in (Delivery, DigestItem, AlertHistory):
            table: Any = model.__table__  # type: ignore[union-attr]
            await conn.execute(sa.delete(table).where(table.c.alert_id.in_(ids)))
        await conn.execute(sa.delete(alerts).where(alerts.c.id.in_(ids)))
    bands = RiskBand.__table__  # type: ignore[attr-defined]
    await conn.execute(
        sa.delete(bands).where(bands.c.tenant_id == tenant_id, bands.c.customer_id == customer_id)
    )
    return len(ids)


def _as_date(value: Any) -> date:
    """A ``DATE()`` result: a date on MySQL, ``YYYY-MM-DD`` text on SQLite."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


class DashboardRepository:
    """The alerts' part of the dashboard: alerts per status now, and their status changes
    (the alert history) per UTC day."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count_by_status(self, tenant_id: str) -> dict[str, int]:
        conn = await self.session.connection()
        a = Alert.__table__.c  # type: ignore[attr-defined]
        result = await conn.execute(
            sa.select(a.status, sa.func.count()).where(a.tenant_id == tenant_id).group_by(a.status)
        )
        return {status: int(n) for status, n in result}

    async def changes_by_day(
        self, tenant_id: str, until: datetime
    ) -> list[tuple[date, str | None, str, int]]:
        """Status changes recorded before ``until``, per (day, from status, to status); an
        alert's first entry (``raised``) comes from no status."""
        conn = await self.session.connection()
        h = AlertHistory.__table__.c  # type: ignore[attr-defined]
        day = sa.func.date(h.created_at).label("day")
        result = await conn.execute(
            sa.select(day, h.from_status, h.to_status, sa.func.count())
            .where(h.tenant_id == tenant_id, h.created_at < until)
            .group_by(day, h.from_status, h.to_status)
        )
        return [(_as_date(d), before, after, int(n)) for d, before, after, n in result]
