"""In-memory fakes of the customers repositories, and the event ingest built on them: the fast
layer (no database, no broker)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from churn_customers.features import FeatureState
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

    async def in_ranges(
        self,
        tenant_id: str,
        wanted: Mapping[str, Sequence[tuple[datetime, datetime]]],
        types: Iterable[str],
    ) -> dict[str, list[StoredEvent]]:
        kinds = set(types)
        found: dict[str, list[StoredEvent]] = {}
        for r in sorted(self.rows, key=lambda r: r["occurred_at"]):
            ranges = wanted.get(r["customer_id"], ())
            if (
                r["tenant_id"] == tenant_id
                and r["type"] in kinds
                and any(lo <= r["occurred_at"] < hi for lo, hi in ranges)
            ):
                found.setdefault(r["customer_id"], []).append(
                    StoredEvent(r["customer_id"], r["type"], r["occurred_at"], r["properties"])
                )
        return found


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
        #: (tenant, customer) → the feature state, as JSON (as the table stores it)
        self.states_json: dict[tuple[str, str], dict[str, Any] | None] = {}

    async def upsert_many(
        self,
        tenant_id: str,
        profiles: Mapping[str, Mapping[str, float | None]],
        as_of: datetime,
        states: Mapping[str, FeatureState] | None = None,
    ) -> None:
        for cid, features in profiles.items():
            self.profiles[(tenant_id, cid)] = (dict(features), as_of)
            state = (states or {}).get(cid)
            self.states_json[(tenant_id, cid)] = state.to_json() if state else None

    async def states(self, tenant_id: str, customer_ids: Sequence[str]) -> dict[str, FeatureState]:
        found = {}
        for cid in customer_ids:
            state = FeatureState.from_json(self.states_json.get((tenant_id, cid)))
            if state is not None:
                found[cid] = state
        return found


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
