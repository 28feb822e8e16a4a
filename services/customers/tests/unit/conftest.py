"""In-memory fakes of the customers repositories, and the event ingest built on them: the fast
layer (no database, no broker)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from churn_customers.repository import StoredEvent
from churn_customers.service import EventIngestService
from testkit import FakeUnitOfWork


class FakeEventRepository:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        #: Called just before an insert: what a concurrent ingest committed meanwhile.
        self.before_insert: Callable[[], None] | None = None

    def _keys(self) -> set[tuple[str, str]]:
        return {(r["tenant_id"], r["event_id"]) for r in self.rows}

    async def existing_event_ids(self, tenant_id: str, event_ids: Sequence[str]) -> set[str]:
        return {e for t, e in self._keys() if t == tenant_id and e in set(event_ids)}

    async def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.before_insert is not None:
            self.before_insert()
        keys = self._keys()
        if any((r["tenant_id"], r["event_id"]) in keys for r in rows):
            raise IntegrityError("INSERT INTO events", {}, Exception("duplicate event_id"))
        self.rows.extend(dict(r) for r in rows)

    async def for_customers(
        self, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, list[StoredEvent]]:
        grouped: dict[str, list[StoredEvent]] = {cid: [] for cid in customer_ids}
        for r in sorted(self.rows, key=lambda r: r["occurred_at"]):
            if r["tenant_id"] == tenant_id and r["customer_id"] in grouped:
                grouped[r["customer_id"]].append(
                    StoredEvent(r["customer_id"], r["type"], r["occurred_at"], r["properties"])
                )
        return grouped


class FakeCustomerRepository:
    def __init__(self) -> None:
        #: (tenant, customer) → when first seen and last updated
        self.rows: dict[tuple[str, str], dict[str, datetime | None]] = {}

    async def ensure_exist(
        self, tenant_id: str, customer_ids: Sequence[str], now: datetime
    ) -> None:
        for cid in customer_ids:
            self.rows.setdefault(
                (tenant_id, cid), {"created_at": now, "updated_at": now, "first_seen_at": now}
            )

    async def mark_seen(self, tenant_id: str, customer_ids: Sequence[str], now: datetime) -> None:
        for cid in customer_ids:
            row = self.rows[(tenant_id, cid)]
            row["updated_at"] = now
            row["first_seen_at"] = row["first_seen_at"] or now


class FakeFeatureRepository:
    def __init__(self) -> None:
        #: (tenant, customer) → (features, as of)
        self.profiles: dict[tuple[str, str], tuple[dict[str, float | None], datetime]] = {}

    async def upsert_many(
        self,
        tenant_id: str,
        profiles: Mapping[str, Mapping[str, float | None]],
        as_of: datetime,
    ) -> None:
        for cid, features in profiles.items():
            self.profiles[(tenant_id, cid)] = (dict(features), as_of)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(
        events=FakeEventRepository(),
        customers=FakeCustomerRepository(),
        features=FakeFeatureRepository(),
    )


@pytest.fixture
def ingest(uow: FakeUnitOfWork) -> EventIngestService:
    return EventIngestService(
        uow.session,
        max_batch=100,
        events=uow.events,
        customers=uow.customers,
        features=uow.features,
    )
