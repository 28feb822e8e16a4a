"""In-memory fakes of the alerts repositories, and the alert service built on them: the fast
layer (no database, no broker). The outbox is the real adapter over testkit's fake session."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import pytest

from churn_alerts.models import Alert, AlertChannel, AlertHistory, AlertRule, Delivery, RiskBand
from churn_alerts.repository import EventRepository
from churn_alerts.service import AlertService
from testkit import FakeUnitOfWork


class FakeRuleRepository:
    def __init__(self) -> None:
        self.rows: dict[str, AlertRule] = {}

    async def get(self, tenant_id: str) -> AlertRule | None:
        return self.rows.get(tenant_id)

    async def for_tenants(self, tenant_ids: Iterable[str]) -> list[AlertRule]:
        return [self.rows[t] for t in tenant_ids if t in self.rows]

    async def save(self, rule: AlertRule) -> AlertRule:
        self.rows[rule.tenant_id] = rule
        return rule


class FakeBandRepository:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], RiskBand] = {}

    async def for_customers(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], RiskBand]:
        return {k: self.rows[k] for k in set(keys) if k in self.rows}

    async def save_all(self, bands: Sequence[RiskBand]) -> None:
        self.rows.update(((b.tenant_id, b.customer_id), b) for b in bands)

    async def clear(self, tenant_id: str) -> None:
        self.rows = {k: b for k, b in self.rows.items() if k[0] != tenant_id}


class FakeAlertRepository:
    def __init__(self) -> None:
        self.rows: dict[str, Alert] = {}

    async def get(self, tenant_id: str, alert_id: str) -> Alert | None:
        alert = self.rows.get(alert_id)
        return alert if alert is not None and alert.tenant_id == tenant_id else None

    async def get_for_update(self, tenant_id: str, alert_id: str) -> Alert | None:
        return await self.get(tenant_id, alert_id)

    async def last_raised_at(
        self, keys: Iterable[tuple[str, str]], since: datetime
    ) -> dict[tuple[str, str, str], datetime]:
        pairs = set(keys)
        last: dict[tuple[str, str, str], datetime] = {}
        for a in self.rows.values():
            key = (a.tenant_id, a.customer_id, a.kind)
            if (a.tenant_id, a.customer_id) in pairs and a.created_at >= since:
                last[key] = max(last.get(key, a.created_at), a.created_at)
        return last

    async def add_all(self, alerts: Sequence[Alert]) -> None:
        self.rows.update((a.id, a) for a in alerts)

    async def save(self, alert: Alert) -> None:
        self.rows[alert.id] = alert

    async def snoozed_due(self, now: datetime, limit: int) -> list[Alert]:
        due = [
            a
            for a in self.rows.values()
            if a.status == "snoozed" and a.snoozed_until is not None and a.snoozed_until <= now
        ]
        return sorted(due, key=lambda a: a.snoozed_until or now)[:limit]


class FakeHistoryRepository:
    def __init__(self) -> None:
        self.rows: list[AlertHistory] = []

    async def add_all(self, entries: Sequence[AlertHistory]) -> None:
        self.rows.extend(entries)

    async def for_alert(self, tenant_id: str, alert_id: str) -> list[AlertHistory]:
        return [h for h in self.rows if h.tenant_id == tenant_id and h.alert_id == alert_id]


class FakeChannelRepository:
    def __init__(self) -> None:
        self.rows: list[AlertChannel] = []

    async def add(self, channel: AlertChannel) -> AlertChannel:
        self.rows.append(channel)
        return channel

    async def list_active(self, tenant_ids: Iterable[str]) -> list[AlertChannel]:
        tenants = set(tenant_ids)
        return [c for c in self.rows if c.tenant_id in tenants and c.active]


class FakeDeliveryRepository:
    def __init__(self) -> None:
        self.rows: list[Delivery] = []

    async def add_all(self, deliveries: Sequence[Delivery]) -> None:
        self.rows.extend(deliveries)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    uow = FakeUnitOfWork(
        rules=FakeRuleRepository(),
        alerts=FakeAlertRepository(),
        history=FakeHistoryRepository(),
        channels=FakeChannelRepository(),
        deliveries=FakeDeliveryRepository(),
        bands=FakeBandRepository(),
    )
    uow.repositories["events"] = EventRepository(uow.session)
    return uow


@pytest.fixture
def alert_service(uow: FakeUnitOfWork) -> AlertService:
    return AlertService(uow.session, **uow.repositories)


@pytest.fixture
def add_channel(uow: FakeUnitOfWork) -> Callable[..., AlertChannel]:
    def add(tenant_id: str, *, active: bool = True, **values: Any) -> AlertChannel:
        channel = AlertChannel(
            tenant_id=tenant_id,
            kind="webhook",
            name="hooks",
            url="https://hooks.example.com/churn",
            secret="s3cret",
            active=active,
            **values,
        )
        uow.channels.rows.append(channel)
        return channel

    return add
