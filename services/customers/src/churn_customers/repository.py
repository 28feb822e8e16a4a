"""All SQL of the customers service. Repositories execute and flush; they never commit.

Hot paths (event ingest, feature upserts, score updates) are SQLAlchemy Core bulk statements on
the session's connection; every statement filters by ``tenant_id``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.features import PROPERTY_EVENT_TYPES, FeatureState
from churn_customers.models import (
    customer_attribute_rescans,
    customer_cohorts,
    customer_features,
    customer_import_errors,
    customer_imports,
    customer_risk_changes,
    customer_risk_days,
    customer_scores,
    customer_tags,
    customers,
    events,
)
from churn_customers.schemas import CustomerFilter
from churn_shared.db import UTCDateTime

#: Bound parameters per IN list (SQLite allows 32,766 variables per statement).
_CHUNK = 5_000
_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int = _CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """The part of a stored event that features are computed from."""

    customer_id: str
    type: str
    occurred_at: datetime
    properties: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ScoreUpdate:
    tenant_id: str
    customer_id: str
    churn_probability: float
    risk_level: str
    model_version: str
    scored_at: datetime


def _is_mysql(conn: AsyncConnection) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


@dataclass(frozen=True, slots=True)
class StoredProfile:
    """A stored feature profile, as it is sent on ``customer.features.v1``."""

    customer_id: str
    features: dict[str, float | None]
    as_of: datetime


def _same_customer(table: sa.Table = customer_features) -> sa.ColumnElement[bool]:
    """The join of ``customers`` with a table of per-customer rows (``tenant_id``,
    ``customer_id``)."""
    return sa.and_(
        customers.c.tenant_id == table.c.tenant_id,
        customers.c.customer_id == table.c.customer_id,
    )


def _unscored(settled_before: datetime, now: datetime) -> sa.ColumnElement[bool]:
    """A profile (joined with its customer) computed before ``settled_before`` that no stored
    score is as new as, and whose re-sending is not deferred past ``now``."""
    f, c = customer_features.c, customers.c
    return sa.and_(
        f.as_of < settled_before,
        sa.or_(c.scored_at.is_(None), c.scored_at < f.as_of),
        sa.or_(f.republish_after.is_(None), f.republish_after <= now),
    )


#: Attribute → searchable column (lower-cased copy) of the customers table.
SEARCH_ATTRIBUTES = {"email": "search_email", "name": "search_name"}


def search_columns(attributes: Mapping[str, Any]) -> dict[str, str | None]:
    """The ``search_*`` columns for these attributes: each one's text, lower-cased, ≤ 255."""
    columns: dict[str, str | None] = {}
    for key, column in SEARCH_ATTRIBUTES.items():
        value = attributes.get(key)
        columns[column] = str(value).lower()[:255] if value not in (None, "") else None
    return columns


def _prefix_range(
    conn: AsyncConnection, column: sa.ColumnElement[Any], prefix: str
) -> sa.ColumnElement[bool]:
    """``column`` starts with ``prefix``, in a form both databases answer from an index.

    SQLite compares text by code point, so ``prefix <= column < next`` (the last character
    incremented) is the range. MariaDB's ``utf8mb4_unicode_ci`` does not order by code point
    (``':'``, after ``'9'``, sorts before the digits), so there a ``LIKE 'prefix%'`` with the
    wildcards escaped, which it turns into the index range of its own collation."""
    if _is_mysql(conn):
        escaped = prefix.replace("/", "//").replace("%", "/%").replace("_", "/_")
        return column.like(escaped + "%", escape="/")
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return sa.and_(column >= prefix, column < upper)


def customer_conditions(
    conn: AsyncConnection, tenant_id: str, where: CustomerFilter | None
) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of a tenant's customers matching ``where`` (all must hold)."""
    c = customers.c
    conditions: list[sa.ColumnElement[bool]] = [c.tenant_id == tenant_id]
    if where is None:
        return conditions
    if where.risk_level:
        conditions.append(c.risk_level.in_(sorted(set(where.risk_level))))
    if where.min_probability is not None:
        conditions.append(c.churn_probability >= where.min_probability)
    if where.max_probability is not None:
        conditions.append(c.churn_probability <= where.max_probability)
    if where.q:
        folded = where.q.lower()
        conditions.append(
            sa.or_(
                _prefix_range(conn, c.customer_id, where.q),
                _prefix_range(conn, c.search_email, folded),
                _prefix_range(conn, c.search_name, folded),
            )
        )
    if where.seen_after is not None:
        conditions.append(c.updated_at >= where.seen_after)
    if where.seen_before is not None:
        conditions.append(c.updated_at < where.seen_before)
    if where.segment is not None:
        saved = where.segment_filter
        if saved is None:  # pragma: no cover - the services resolve segments first
            raise RuntimeError("resolve the segment (cohorts.resolve_segment) before querying")
        conditions.extend(customer_conditions(conn, tenant_id, saved)[1:])
    if where.tag is not None:
        t = customer_tags.c
        conditions.append(
            sa.exists().where(
                t.tenant_id == c.tenant_id, t.customer_id == c.customer_id, t.tag == where.tag
            )
        )
    for name, value in sorted(where.attributes.items()):
        text = c.attributes[name].as_string()
        if value in ("true", "false") and not _is_mysql(conn):
            # SQLite's JSON_EXTRACT gives a boolean as 1/0; its JSON type names it.
            path = '$."' + name + '"'
            conditions.append(sa.func.json_type(c.attributes, path) == value)
        else:
            conditions.append(text == value)
    return conditions


def _insert_or_ignore(conn: AsyncConnection, table: sa.Table, key: Sequence[str]) -> Any:
    """An INSERT that leaves (and, on MySQL, row-locks) rows whose ``key`` already exists."""
    if _is_mysql(conn):
        mysql_insert = mysql.insert(table)
        return mysql_insert.on_duplicate_key_update({key[0]: mysql_insert.inserted[key[0]]})
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))


def _upsert(
    conn: AsyncConnection, table: sa.Table, key: Sequence[str], columns: Sequence[str]
) -> Any:
    """An INSERT that overwrites ``columns`` of rows whose ``key`` already exists."""
    if _is_mysql(conn):
        mysql_insert = mysql.insert(table)
        return mysql_insert.on_duplicate_key_update(
            {name: mysql_insert.inserted[name] for name in columns}
        )
    sqlite_insert = sqlite.insert(table)
    return sqlite_insert.on_conflict_do_update(
        index_elements=list(key), set_={name: sqlite_insert.excluded[name] for name in columns}
    )


class _Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _conn(self) -> AsyncConnection:
        return await self.session.connection()


class EventRepository(_Repository):
    async def existing_event_ids(self, tenant_id: str, event_ids: Sequence[str]) -> set[str]:
        conn = await self._conn()
        found: set[str] = set()
        for chunk in _chunks(event_ids):
            result = await conn.execute(
                sa.select(events.c.event_id).where(
                    events.c.tenant_id == tenant_id, events.c.event_id.in_(chunk)
                )
            )
            found.update(result.scalars())
        return found

    async def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            conn = await self._conn()
            await conn.execute(sa.insert(events), list(rows))

    async def for_customers(
        self, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, list[StoredEvent]]:
        """Every stored event of these customers, grouped by customer, in time order.

        Properties are loaded only for the event types features read (decoding JSON is the
        costliest part of this query)."""
        conn = await self._conn()
        properties = sa.case(
            (events.c.type.in_(sorted(PROPERTY_EVENT_TYPES)), events.c.properties),
            else_=sa.null(),
        )
        grouped: dict[str, list[StoredEvent]] = {cid: [] for cid in customer_ids}
        for chunk in _chunks(customer_ids):
            result = await conn.execute(
                sa.select(
                    events.c.customer_id,
                    events.c.type,
                    events.c.occurred_at,
                    properties,
                )
                .where(events.c.tenant_id == tenant_id, events.c.customer_id.in_(chunk))
                .order_by(events.c.customer_id, events.c.occurred_at, events.c.id)
            )
            for cid, kind, occurred_at, properties in result:
                grouped[cid].append(StoredEvent(cid, kind, occurred_at, properties or {}))
        return grouped

    async def in_ranges(
        self,
        tenant_id: str,
        wanted: Mapping[str, Sequence[tuple[datetime, datetime]]],
        types: Iterable[str],
    ) -> dict[str, list[StoredEvent]]:
        """The stored events of ``types`` of each customer that fall in one of its
        ``[start, end)`` ranges, in time order (an index range per customer and range: the cost
        follows the events in the ranges, not the customer's history)."""
        conn = await self._conn()
        properties = sa.case(
            (events.c.type.in_(sorted(PROPERTY_EVENT_TYPES)), events.c.properties),
            else_=sa.null(),
        )
        by_range: dict[tuple[datetime, datetime], list[str]] = {}
        for cid, ranges in wanted.items():
            for span in ranges:
                by_range.setdefault(span, []).append(cid)
        found: dict[str, list[StoredEvent]] = {}
        # One statement, each range an arm of a UNION ALL (not an OR of ranges, which SQLite's
        # planner answers by reading each customer's whole history): every arm is a
        # (tenant, customer, occurred_at) index seek, and the whole is one round trip.
        for chunk in _chunks(sorted(wanted)):
            members = set(chunk)
            arms = []
            for (lo, hi), customer_ids in sorted(by_range.items()):
                in_range = [cid for cid in customer_ids if cid in members]
                if in_range:
                    arms.append(
                        sa.select(
                            events.c.id,
                            events.c.customer_id,
                            events.c.type,
                            events.c.occurred_at,
                            properties.label("properties"),
                        ).where(
                            events.c.tenant_id == tenant_id,
                            events.c.customer_id.in_(in_range),
                            events.c.occurred_at >= lo,
                            events.c.occurred_at < hi,
                            events.c.type.in_(sorted(types)),
                        )
                    )
            if not arms:
                continue
            union = sa.union_all(*arms).subquery()
            result = await conn.execute(
                sa.select(
                    union.c.id,
                    union.c.customer_id,
                    union.c.type,
                    union.c.occurred_at,
                    union.c.properties,
                ).order_by(union.c.customer_id, union.c.occurred_at, union.c.id)
            )
            previous = None
            for event_id, cid, kind, occurred_at, props in result:
                if event_id == previous:  # in two overlapping ranges
                    continue
                previous = event_id
                found.setdefault(cid, []).append(StoredEvent(cid, kind, occurred_at, props or {}))
        return found

    async def latest_occurred_at(self, tenant_id: str) -> datetime | None:
        conn = await self._conn()
        result = await conn.execute(
            sa.select(sa.func.max(events.c.occurred_at)).where(events.c.tenant_id == tenant_id)
        )
        value: Any = result.scalar()
        if value is None:
            return None
        # ``max()`` may lose the column type on some backends; normalise like UTCDateTime.
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(moment, datetime)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    async def stream_histories(
        self, tenant_id: str, until: datetime, *, partition: int = 5_000
    ) -> AsyncIterator[tuple[str, list[StoredEvent]]]:
        """Every customer's events up to ``until``, one customer at a time, in time order.

        One streamed (server-side cursor) query in index order (tenant, customer, time), so the
        tenant's history is read once and never held in memory whole."""
        conn = await self._conn()
        properties = sa.case(
            (events.c.type.in_(sorted(PROPERTY_EVENT_TYPES)), events.c.properties),
            else_=sa.null(),
        )
        result = await conn.stream(
            sa.select(events.c.customer_id, events.c.type, events.c.occurred_at, properties)
            .where(events.c.tenant_id == tenant_id, events.c.occurred_at <= until)
            .order_by(events.c.customer_id, events.c.occurred_at, events.c.id)
        )
        current: str | None = None
        history: list[StoredEvent] = []
        async for rows in result.partitions(partition):
            for cid, kind, occurred_at, props in rows:
                if cid != current:
                    if current is not None:
                        yield current, history
                    current, history = cid, []
                history.append(StoredEvent(cid, kind, occurred_at, props or {}))
        if current is not None:
            yield current, history

    async def delete_for_customer(self, tenant_id: str, customer_id: str) -> None:
        conn = await self._conn()
        await conn.execute(
            sa.delete(events).where(
                events.c.tenant_id == tenant_id, events.c.customer_id == customer_id
            )
        )


class FeatureRepository(_Repository):
    async def upsert_many(
        self,
        tenant_id: str,
        profiles: Mapping[str, Mapping[str, float | None]],
        as_of: datetime,
        states: Mapping[str, FeatureState] | None = None,
    ) -> None:
        """Insert or overwrite the feature profiles of these customers, with the state each was
        computed from (none given: stored as none), in one bulk statement."""
        if not profiles:
            return
        states = states or {}
        conn = await self._conn()
        statement = _upsert(
            conn,
            customer_features,
            ("tenant_id", "customer_id"),
            # A new profile has not been re-sent yet: the reconciler's backoff starts afresh.
            ("features", "as_of", "updated_at", "republish_after", "state"),
        )
        await conn.execute(
            statement,
            [
                {
                    "tenant_id": tenant_id,
                    "customer_id": cid,
                    "features": dict(features),
                    "as_of": as_of,
                    "updated_at": as_of,
                    "republish_after": None,
                    "state": states[cid].to_json() if cid in states else None,
                }
                for cid, features in sorted(profiles.items())
            ],
        )

    async def states(self, tenant_id: str, customer_ids: Sequence[str]) -> dict[str, FeatureState]:
        """The usable stored feature states of these customers (none, or one of another
        version, is left out: the caller rebuilds it). Lock the customers first, as an ingest
        does, so no other transaction changes them before the caller writes them back."""
        conn = await self._conn()
        f = customer_features.c
        found: dict[str, FeatureState] = {}
        for chunk in _chunks(sorted(customer_ids)):
            result = await conn.execute(
                sa.select(f.customer_id, f.state).where(
                    f.tenant_id == tenant_id, f.customer_id.in_(chunk), f.state.is_not(None)
                )
            )
            for cid, data in result:
                state = FeatureState.from_json(data)
                if state is not None:
                    found[cid] = state
        return found

    async def stale(self, computed_before: datetime, limit: int) -> dict[str, list[str]]:
        """Up to ``limit`` profiles computed before ``computed_before``, oldest first, as
        ``{tenant_id: [customer_id, ...]}``."""
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customer_features.c.tenant_id, customer_features.c.customer_id)
            .where(customer_features.c.as_of < computed_before)
            .order_by(customer_features.c.as_of)
            .limit(limit)
        )
        stale: dict[str, list[str]] = {}
        for tenant_id, customer_id in result:
            stale.setdefault(tenant_id, []).append(customer_id)
        return stale

    async def unscored(
        self,
        settled_before: datetime,
        now: datetime,
        limit: int,
        after: tuple[str, str] | None = None,
    ) -> list[tuple[str, str]]:
        """Up to ``limit`` ``(tenant_id, customer_id)`` whose profile is newer than their
        latest score (or who were never scored), computed before ``settled_before`` and not
        deferred past ``now`` (:meth:`defer_republish`); in key order, after ``after``.

        A plain read: it takes no locks (callers lock and check again with
        :meth:`lock_unscored`). It walks the profiles' primary key and looks each customer up
        by its unique key; the condition compares the two tables, so no index can narrow it."""
        conn = await self._conn()
        f = customer_features.c
        query = (
            sa.select(f.tenant_id, f.customer_id)
            .select_from(customer_features.join(customers, _same_customer()))
            .where(_unscored(settled_before, now))
            .order_by(f.tenant_id, f.customer_id)
            .limit(limit)
        )
        if after is not None:
            tenant_id, customer_id = after
            query = query.where(
                sa.or_(
                    f.tenant_id > tenant_id,
                    sa.and_(f.tenant_id == tenant_id, f.customer_id > customer_id),
                )
            )
        result = await conn.execute(query)
        return [(tenant_id, customer_id) for tenant_id, customer_id in result]

    async def lock_unscored(
        self,
        tenant_id: str,
        customer_ids: Sequence[str],
        settled_before: datetime,
        now: datetime,
    ) -> list[StoredProfile]:
        """Those of these customers' profiles that still match :meth:`unscored`, read as last
        committed and locked until the transaction ends, in customer-id order. Lock the
        customers first (``CustomerRepository.lock_existing``), as an ingest does.

        MySQL locks the rows it reads (``FOR UPDATE``). SQLite has no row locks: a first
        no-op write takes the database's write lock, so nothing commits between this read and
        the caller's writes."""
        if not customer_ids:
            return []
        conn = await self._conn()
        f = customer_features.c
        found: list[StoredProfile] = []
        for chunk in _chunks(sorted(customer_ids)):
            mine = sa.and_(f.tenant_id == tenant_id, f.customer_id.in_(chunk))
            if not _is_mysql(conn):
                await conn.execute(
                    sa.update(customer_features)
                    .where(mine)
                    .values(republish_after=f.republish_after)
                )
            query = (
                sa.select(f.customer_id, f.features, f.as_of)
                .select_from(customer_features.join(customers, _same_customer()))
                .where(mine, _unscored(settled_before, now))
                .order_by(f.customer_id)
            )
            if _is_mysql(conn):
                query = query.with_for_update()
            result = await conn.execute(query)
            found.extend(
                StoredProfile(cid, dict(features), as_of) for cid, features, as_of in result
            )
        return found

    async def defer_republish(self, tenant_id: str, until: Mapping[str, datetime]) -> None:
        """Set when each of these profiles may be re-sent next (one statement per customer by
        its key, in id order, like ``mark_seen``)."""
        if not until:
            return
        f = customer_features.c
        statement = (
            sa.update(customer_features)
            .where(f.tenant_id == sa.bindparam("b_tenant_id"))
            .where(f.customer_id == sa.bindparam("b_customer_id"))
            .values(republish_after=sa.bindparam("b_until", type_=UTCDateTime()))
        )
        conn = await self._conn()
        await conn.execute(
            statement,
            [
                {"b_tenant_id": tenant_id, "b_customer_id": cid, "b_until": moment}
                for cid, moment in sorted(until.items())
            ],
        )

    async def get(self, tenant_id: str, customer_id: str) -> sa.Row[Any, Any] | None:
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customer_features.c.features, customer_features.c.as_of).where(
                customer_features.c.tenant_id == tenant_id,
                customer_features.c.customer_id == customer_id,
            )
        )
        return result.first()

    async def delete_for_customer(self, tenant_id: str, customer_id: str) -> None:
        conn = await self._conn()
        await conn.execute(
            sa.delete(customer_features).where(
                customer_features.c.tenant_id == tenant_id,
                customer_features.c.customer_id == customer_id,
            )
        )


class CustomerRepository(_Repository):
    async def ensure_exist(
        self, tenant_id: str, customer_ids: Sequence[str], now: datetime
    ) -> None:
        """Create the customers not known yet (first seen now). On MySQL this also locks every
        one of these customer rows, in id order, until the transaction ends: concurrent ingests
        for the same customer take turns, so each recomputes features from all committed events.
        """
        if not customer_ids:
            return
        conn = await self._conn()
        statement = _insert_or_ignore(conn, customers, ("tenant_id", "customer_id"))
        await conn.execute(
            statement,
            [
                {
                    "tenant_id": tenant_id,
                    "customer_id": cid,
                    "attributes": {},
                    "created_at": now,
                    "updated_at": now,
                    "first_seen_at": now,
                }
                for cid in sorted(customer_ids)
            ],
        )

    async def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            conn = await self._conn()
            await conn.execute(
                sa.insert(customers),
                [{**row, **search_columns(row.get("attributes") or {})} for row in rows],
            )

    async def attributes_for(
        self, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """The stored attributes of those of these customers that exist, locked (MySQL) until
        the transaction ends so a concurrent update is not lost between read and write."""
        conn = await self._conn()
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(sorted(customer_ids)):
            result = await conn.execute(
                sa.select(customers.c.customer_id, customers.c.attributes)
                .where(customers.c.tenant_id == tenant_id, customers.c.customer_id.in_(chunk))
                .with_for_update()
            )
            for cid, attributes in result:
                found[cid] = dict(attributes or {})
        return found

    async def upsert_attributes(
        self, tenant_id: str, attributes: Mapping[str, Mapping[str, Any]], now: datetime
    ) -> None:
        """Create these customers or overwrite their attributes (bulk, in chunks)."""
        if not attributes:
            return
        conn = await self._conn()
        statement = _upsert(
            conn,
            customers,
            ("tenant_id", "customer_id"),
            ("attributes", "updated_at", *SEARCH_ATTRIBUTES.values()),
        )
        items = list(attributes.items())
        for chunk in _chunks(items, 1_000):
            await conn.execute(
                statement,
                [
                    {
                        "tenant_id": tenant_id,
                        "customer_id": cid,
                        "attributes": dict(values),
                        "created_at": now,
                        "updated_at": now,
                        **search_columns(values),
                    }
                    for cid, values in chunk
                ],
            )

    async def all_attributes(self, tenant_id: str) -> list[tuple[str, dict[str, Any]]]:
        """``(customer_id, attributes)`` of every customer of the tenant, by customer id."""
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customers.c.customer_id, customers.c.attributes)
            .where(customers.c.tenant_id == tenant_id)
            .order_by(customers.c.customer_id)
        )
        return [(cid, dict(attributes or {})) for cid, attributes in result]

    async def lock_attributes_page(
        self, tenant_id: str, after: str | None, limit: int
    ) -> list[tuple[str, dict[str, Any], datetime]]:
        """``(customer_id, attributes, updated_at)`` of up to ``limit`` of the tenant's customers
        after ``after`` (``None``: from the first), by id, locked (on MySQL) in id order as
        every writer locks them: a concurrent write of their attributes waits, or is read."""
        conn = await self._conn()
        query = sa.select(customers.c.customer_id, customers.c.attributes, customers.c.updated_at)
        query = query.where(customers.c.tenant_id == tenant_id)
        if after is not None:
            query = query.where(customers.c.customer_id > after)
        result = await conn.execute(
            query.order_by(customers.c.customer_id).limit(limit).with_for_update()
        )
        return [(cid, dict(attributes or {}), updated) for cid, attributes, updated in result]

    async def lock_existing(self, tenant_id: str, customer_ids: Sequence[str]) -> list[str]:
        """Those of these customers that still exist, locked (on MySQL) in id order until the
        transaction ends, as an ingest locks them: a refresh never overwrites newer features."""
        conn = await self._conn()
        found: list[str] = []
        for chunk in _chunks(sorted(customer_ids)):
            result = await conn.execute(
                sa.select(customers.c.customer_id)
                .where(customers.c.tenant_id == tenant_id, customers.c.customer_id.in_(chunk))
                .order_by(customers.c.customer_id)
                .with_for_update()
            )
            found.extend(row[0] for row in result)
        return found

    async def lock_levels(
        self, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, tuple[str | None, datetime | None]]:
        """:meth:`lock_existing`, with each customer's latest risk level and its time."""
        conn = await self._conn()
        c = customers.c
        found: dict[str, tuple[str | None, datetime | None]] = {}
        for chunk in _chunks(sorted(customer_ids)):
            result = await conn.execute(
                sa.select(c.customer_id, c.risk_level, c.scored_at)
                .where(c.tenant_id == tenant_id, c.customer_id.in_(chunk))
                .order_by(c.customer_id)
                .with_for_update()
            )
            found.update((cid, (level, scored_at)) for cid, level, scored_at in result)
        return found

    async def mark_seen(self, tenant_id: str, customer_ids: Sequence[str], now: datetime) -> None:
        """Touch ``updated_at`` and set ``first_seen_at`` where it is still empty.

        One statement per customer by its unique key, in id order: an ``IN (…)`` update may be
        run as a scan that (under MySQL's repeatable read) locks every row it passes, including
        other transactions' customers, out of order — a deadlock with a concurrent ingest."""
        if not customer_ids:
            return
        c = customers.c
        seen_at = sa.bindparam("b_now", type_=UTCDateTime())
        statement = (
            sa.update(customers)
            .where(c.tenant_id == sa.bindparam("b_tenant_id"))
            .where(c.customer_id == sa.bindparam("b_customer_id"))
            .values(updated_at=seen_at, first_seen_at=sa.func.coalesce(c.first_seen_at, seen_at))
        )
        conn = await self._conn()
        await conn.execute(
            statement,
            [
                {"b_tenant_id": tenant_id, "b_customer_id": cid, "b_now": now}
                for cid in sorted(set(customer_ids))
            ],
        )

    async def get(self, tenant_id: str, customer_id: str) -> sa.Row[Any] | None:
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customers).where(
                customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id
            )
        )
        return result.first()

    async def set_attributes(
        self, tenant_id: str, customer_id: str, attributes: dict[str, Any], now: datetime
    ) -> None:
        conn = await self._conn()
        await conn.execute(
            sa.update(customers)
            .where(customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id)
            .values(attributes=attributes, updated_at=now, **search_columns(attributes))
        )

    async def delete(self, tenant_id: str, customer_id: str) -> int:
        conn = await self._conn()
        result = await conn.execute(
            sa.delete(customers).where(
                customers.c.tenant_id == tenant_id, customers.c.customer_id == customer_id
            )
        )
        return int(result.rowcount)

    async def page(
        self,
        tenant_id: str,
        sort: str,
        limit: int,
        after: list[Any] | None,
        where: CustomerFilter | None = None,
    ) -> Sequence[sa.Row[Any]]:
        """One keyset page (``limit + 1`` rows, to tell whether another page follows) of the
        tenant's customers that match ``where``.

        Every order ends with ``customer_id`` so it is total. ``-churn_probability`` puts
        unscored customers (null) last on SQLite and MySQL alike.
        """
        c = customers.c
        conn = await self._conn()
        query = sa.select(customers).where(*customer_conditions(conn, tenant_id, where))
        if sort == "customer_id":
            query = query.order_by(c.customer_id)
            if after is not None:
                query = query.where(c.customer_id > after[0])
        elif sort == "-churn_probability":
            query = query.order_by(c.churn_probability.desc(), c.customer_id)
            if after is not None:
                probability, last_id = after
                if probability is None:
                    query = query.where(c.churn_probability.is_(None), c.customer_id > last_id)
                else:
                    query = query.where(
                        sa.or_(
                            c.churn_probability < probability,
                            sa.and_(c.churn_probability == probability, c.customer_id > last_id),
                            c.churn_probability.is_(None),
                        )
                    )
        elif sort == "-updated_at":
            query = query.order_by(c.updated_at.desc(), c.customer_id)
            if after is not None:
                updated_at, last_id = after
                query = query.where(
                    sa.or_(
                        c.updated_at < updated_at,
                        sa.and_(c.updated_at == updated_at, c.customer_id > last_id),
                    )
                )
        else:  # pragma: no cover - the schema restricts ``sort``
            raise ValueError(f"unknown sort {sort!r}")
        result = await conn.execute(query.limit(limit + 1))
        return result.all()

    async def apply_scores(self, scores: Iterable[ScoreUpdate]) -> None:
        """Store each score as the customer's latest unless a newer one is already stored."""
        rows = [
            {
                "b_tenant_id": s.tenant_id,
                "b_customer_id": s.customer_id,
                "b_probability": s.churn_probability,
                "b_risk_level": s.risk_level,
                "b_model_version": s.model_version,
                "b_scored_at": s.scored_at,
            }
            # Customer-id order, as every other writer locks customers (ensure_exist,
            # lock_existing): two transactions that lock rows in different orders deadlock.
            # Within one customer, oldest first, so the newest score is the one that stays.
            for s in sorted(scores, key=lambda s: (s.tenant_id, s.customer_id, s.scored_at))
        ]
        if not rows:
            return
        c = customers.c
        scored_at = sa.bindparam("b_scored_at", type_=UTCDateTime())
        statement = (
            sa.update(customers)
            .where(
                c.tenant_id == sa.bindparam("b_tenant_id"),
                c.customer_id == sa.bindparam("b_customer_id"),
                sa.or_(c.scored_at.is_(None), c.scored_at <= scored_at),
            )
            .values(
                churn_probability=sa.bindparam("b_probability"),
                risk_level=sa.bindparam("b_risk_level"),
                model_version=sa.bindparam("b_model_version"),
                scored_at=scored_at,
            )
        )
        conn = await self._conn()
        await conn.execute(statement, rows)


#: Imports that hold one of their tenant's import slots.
ACTIVE_IMPORT_STATUSES = ("queued", "running")


class ImportRepository(_Repository):
    async def add(self, row: Mapping[str, Any]) -> None:
        conn = await self._conn()
        await conn.execute(sa.insert(customer_imports), [dict(row)])

    async def add_if_fewer_active(
        self, row: Mapping[str, Any], *, limit: int, active_since: datetime
    ) -> bool:
        """Insert the import ``row`` unless its tenant already has ``limit`` imports queued or
        running that were created at or after ``active_since``; whether it was inserted.

        One ``INSERT … SELECT … WHERE (SELECT COUNT(*) …) < limit`` statement, so the count and
        the insert cannot interleave with another request's: SQLite runs it under the database
        write lock; MySQL share-locks the counted index range, so of two racing requests one
        waits or is chosen as a deadlock victim (and retried by the caller's unit of work)."""
        conn = await self._conn()
        active = (
            sa.select(sa.func.count())
            .select_from(customer_imports)
            .where(
                customer_imports.c.tenant_id == row["tenant_id"],
                customer_imports.c.created_at >= active_since,
                customer_imports.c.status.in_(ACTIVE_IMPORT_STATUSES),
            )
            .scalar_subquery()
        )
        names = list(row)
        values = sa.select(
            *(sa.literal(row[name], customer_imports.c[name].type).label(name) for name in names)
        ).where(active < limit)
        result = await conn.execute(sa.insert(customer_imports).from_select(names, values))
        return bool(result.rowcount == 1)

    async def get(self, tenant_id: str, import_id: str) -> sa.Row[Any] | None:
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customer_imports).where(
                customer_imports.c.tenant_id == tenant_id, customer_imports.c.id == import_id
            )
        )
        return result.first()

    async def update(self, tenant_id: str, import_id: str, **values: Any) -> None:
        conn = await self._conn()
        await conn.execute(
            sa.update(customer_imports)
            .where(customer_imports.c.tenant_id == tenant_id, customer_imports.c.id == import_id)
            .values(**values)
        )

    async def by_idempotency_key(self, tenant_id: str, key: str) -> sa.Row[Any] | None:
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customer_imports).where(
                customer_imports.c.tenant_id == tenant_id,
                customer_imports.c.idempotency_key == key,
            )
        )
        return result.first()

    async def by_content(self, tenant_id: str, content_key: str) -> sa.Row[Any] | None:
        """The latest import of this file and mapping that did not fail."""
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customer_imports)
            .where(
                customer_imports.c.tenant_id == tenant_id,
                customer_imports.c.content_key == content_key,
                customer_imports.c.status != "failed",
            )
            .order_by(customer_imports.c.created_at.desc())
            .limit(1)
        )
        return result.first()

    async def by_id(self, import_id: str) -> sa.Row[Any] | None:
        """Any tenant's import (the runner works on the imports it holds)."""
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customer_imports).where(customer_imports.c.id == import_id)
        )
        return result.first()

    async def claimable(self, stale_before: datetime, limit: int) -> Sequence[Any]:
        """Imports nobody holds, oldest first: queued ones, and running ones whose runner has
        not renewed them since ``stale_before`` (its process died)."""
        conn = await self._conn()
        c = customer_imports.c
        result = await conn.execute(
            sa.select(c.id, c.tenant_id, c.status, c.created_at)
            .where(
                sa.or_(
                    c.status == "queued",
                    sa.and_(
                        c.status == "running",
                        sa.or_(c.heartbeat_at.is_(None), c.heartbeat_at < stale_before),
                    ),
                )
            )
            .order_by(c.created_at)
            .limit(limit)
        )
        return result.all()

    async def claim(self, import_id: str, now: datetime, stale_before: datetime) -> int | None:
        """Take the import if it is still free (one conditional UPDATE: of two runners, one
        wins); its attempt number, or ``None``."""
        conn = await self._conn()
        c = customer_imports.c
        result = await conn.execute(
            sa.update(customer_imports)
            .where(
                c.id == import_id,
                sa.or_(
                    c.status == "queued",
                    sa.and_(
                        c.status == "running",
                        sa.or_(c.heartbeat_at.is_(None), c.heartbeat_at < stale_before),
                    ),
                ),
            )
            .values(status="running", heartbeat_at=now, attempts=c.attempts + 1)
        )
        if result.rowcount != 1:
            return None
        attempts = await conn.scalar(sa.select(c.attempts).where(c.id == import_id))
        return int(attempts or 0)

    async def update_held(self, import_id: str, attempt: int, **values: Any) -> bool:
        """Update the import if this runner (its ``attempt``) still holds it; whether it did."""
        conn = await self._conn()
        c = customer_imports.c
        result = await conn.execute(
            sa.update(customer_imports)
            .where(c.id == import_id, c.status == "running", c.attempts == attempt)
            .values(**values)
        )
        return bool(result.rowcount == 1)

    async def add_errors(self, tenant_id: str, import_id: str, rows: Sequence[Any]) -> None:
        """Store rejected rows (``RowError``); one already stored (a resumed batch) is kept."""
        if not rows:
            return
        conn = await self._conn()
        statement = _insert_or_ignore(conn, customer_import_errors, ("import_id", "line"))
        await conn.execute(
            statement,
            [
                {
                    "import_id": import_id,
                    "line": row.line,
                    "tenant_id": tenant_id,
                    "column": row.column,
                    "value": row.value,
                    "reason": row.reason,
                }
                for row in rows
            ],
        )

    async def errors_page(
        self, tenant_id: str, import_id: str, after_line: int, limit: int
    ) -> Sequence[Any]:
        conn = await self._conn()
        e = customer_import_errors.c
        result = await conn.execute(
            sa.select(e.line, e.column, e.value, e.reason)
            .where(e.import_id == import_id, e.tenant_id == tenant_id, e.line > after_line)
            .order_by(e.line)
            .limit(limit)
        )
        return result.all()


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """One score to keep in a customer's history."""

    tenant_id: str
    customer_id: str
    scored_at: datetime
    churn_probability: float
    risk_level: str
    model_version: str
    drivers: list[dict[str, Any]]


class ScoreHistoryRepository(_Repository):
    async def add_many(self, records: Sequence[ScoreRecord]) -> None:
        """Insert these scores; one already stored (same customer, time and model) is kept."""
        if not records:
            return
        conn = await self._conn()
        statement = _insert_or_ignore(
            conn, customer_scores, ("tenant_id", "customer_id", "scored_at", "model_version")
        )
        for chunk in _chunks(
            sorted(records, key=lambda r: (r.tenant_id, r.customer_id, r.scored_at)), 1_000
        ):
            await conn.execute(
                statement,
                [
                    {
                        "tenant_id": r.tenant_id,
                        "customer_id": r.customer_id,
                        "scored_at": r.scored_at,
                        "churn_probability": r.churn_probability,
                        "risk_level": r.risk_level,
                        "model_version": r.model_version,
                        "drivers": r.drivers,
                    }
                    for r in chunk
                ],
            )

    async def page(
        self, tenant_id: str, customer_id: str, limit: int, after: tuple[datetime, int] | None
    ) -> Sequence[Any]:
        """One keyset page, newest first (``limit + 1`` rows: whether another page follows)."""
        s = customer_scores.c
        query = (
            sa.select(
                s.id, s.scored_at, s.churn_probability, s.risk_level, s.model_version, s.drivers
            )
            .where(s.tenant_id == tenant_id, s.customer_id == customer_id)
            .order_by(s.scored_at.desc(), s.id.desc())
            .limit(limit + 1)
        )
        if after is not None:
            scored_at, last_id = after
            query = query.where(
                sa.or_(s.scored_at < scored_at, sa.and_(s.scored_at == scored_at, s.id < last_id))
            )
        conn = await self._conn()
        return (await conn.execute(query)).all()

    async def prune_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to ``limit`` scores older than ``cutoff``, oldest rows first, but never a
        customer's latest score (the one its row names: the list's drivers come from it);
        how many were deleted."""
        conn = await self._conn()
        s, c = customer_scores.c, customers.c
        latest = (
            sa.select(sa.literal(1))
            .where(
                c.tenant_id == s.tenant_id,
                c.customer_id == s.customer_id,
                c.scored_at == s.scored_at,
                c.model_version == s.model_version,
            )
            .exists()
        )
        ids = (
            (
                await conn.execute(
                    sa.select(s.id).where(s.scored_at < cutoff, ~latest).order_by(s.id).limit(limit)
                )
            )
            .scalars()
            .all()
        )
        if ids:
            await conn.execute(sa.delete(customer_scores).where(s.id.in_(ids)))
        return len(ids)

    async def delete_for_customers(self, tenant_id: str, customer_ids: Sequence[str]) -> None:
        conn = await self._conn()
        for chunk in _chunks(list(customer_ids)):
            await conn.execute(
                sa.delete(customer_scores).where(
                    customer_scores.c.tenant_id == tenant_id,
                    customer_scores.c.customer_id.in_(chunk),
                )
            )


@dataclass(frozen=True, slots=True)
class AttributeRescan:
    tenant_id: str
    after_customer_id: str | None


class AttributeRescanRepository(_Repository):
    """The tenants whose customers' attributes are being sent again
    (:class:`churn_customers.models.CustomerAttributeRescan`)."""

    async def request(self, tenant_id: str, model_version: str | None, now: datetime) -> None:
        """Start the tenant's rescan from its first customer (over one under way)."""
        conn = await self._conn()
        await conn.execute(
            _upsert(
                conn,
                customer_attribute_rescans,
                ("tenant_id",),
                ("model_version", "after_customer_id", "requested_at"),
            ),
            [
                {
                    "tenant_id": tenant_id,
                    "model_version": model_version,
                    "after_customer_id": None,
                    "requested_at": now,
                }
            ],
        )

    async def lock_next(self) -> AttributeRescan | None:
        """The oldest rescan no other transaction holds, locked until this one ends."""
        conn = await self._conn()
        t = customer_attribute_rescans.c
        row = (
            await conn.execute(
                sa.select(t.tenant_id, t.after_customer_id)
                .order_by(t.requested_at, t.tenant_id)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
        ).first()
        return None if row is None else AttributeRescan(*row)

    async def advance(self, tenant_id: str, after_customer_id: str) -> None:
        conn = await self._conn()
        t = customer_attribute_rescans.c
        await conn.execute(
            sa.update(customer_attribute_rescans)
            .where(t.tenant_id == tenant_id)
            .values(after_customer_id=after_customer_id)
        )

    async def finish(self, tenant_id: str) -> None:
        conn = await self._conn()
        await conn.execute(
            sa.delete(customer_attribute_rescans).where(
                customer_attribute_rescans.c.tenant_id == tenant_id
            )
        )


class ExportRepository(_Repository):
    """Reads for the customer export: keyset pages by customer id of a filtered selection."""

    async def count_up_to(self, tenant_id: str, where: CustomerFilter, cap: int) -> int:
        """How many customers match, counting at most ``cap``."""
        conn = await self._conn()
        matching = (
            sa.select(customers.c.id)
            .where(*customer_conditions(conn, tenant_id, where))
            .limit(cap)
            .subquery()
        )
        result = await conn.execute(sa.select(sa.func.count()).select_from(matching))
        return int(result.scalar_one())

    async def attribute_names_page(
        self, tenant_id: str, where: CustomerFilter, after: str | None, limit: int
    ) -> list[tuple[str, list[str]]]:
        """``(customer_id, attribute names)`` of up to ``limit`` matching customers after
        ``after``, by customer id."""
        conn = await self._conn()
        c = customers.c
        query = (
            sa.select(c.customer_id, c.attributes)
            .where(*customer_conditions(conn, tenant_id, where))
            .order_by(c.customer_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(c.customer_id > after)
        result = await conn.execute(query)
        return [(cid, list(attributes or {})) for cid, attributes in result]

    async def page(
        self, tenant_id: str, where: CustomerFilter, after: str | None, limit: int
    ) -> Sequence[Any]:
        """Up to ``limit`` matching customers after ``after`` (by id), each with the drivers
        of their latest score (from the score history; null when it holds none)."""
        conn = await self._conn()
        c, s = customers.c, customer_scores.c
        latest = sa.and_(
            s.tenant_id == c.tenant_id,
            s.customer_id == c.customer_id,
            s.scored_at == c.scored_at,
            s.model_version == c.model_version,
        )
        query = (
            sa.select(
                c.customer_id,
                c.churn_probability,
                c.risk_level,
                c.model_version,
                c.scored_at,
                c.first_seen_at,
                c.updated_at,
                c.attributes,
                s.drivers,
            )
            .select_from(customers.outerjoin(customer_scores, latest))
            .where(*customer_conditions(conn, tenant_id, where))
            .order_by(c.customer_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(c.customer_id > after)
        return (await conn.execute(query)).all()


class ScoringInputRepository(_Repository):
    """Reads for prediction jobs over a filter: what a model reads about each customer."""

    async def page(
        self, tenant_id: str, where: CustomerFilter, after: str | None, limit: int
    ) -> Sequence[Any]:
        """Up to ``limit`` matching customers after ``after`` (by id): ``customer_id``,
        ``attributes`` and ``features`` (their stored profile; null when they have none)."""
        conn = await self._conn()
        c, f = customers.c, customer_features.c
        query = (
            sa.select(c.customer_id, c.attributes, f.features)
            .select_from(
                customers.outerjoin(
                    customer_features,
                    sa.and_(f.tenant_id == c.tenant_id, f.customer_id == c.customer_id),
                )
            )
            .where(*customer_conditions(conn, tenant_id, where))
            .order_by(c.customer_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(c.customer_id > after)
        return (await conn.execute(query)).all()


class BulkRepository(_Repository):
    """Bulk actions on customers: selection, tags, deletion with everything kept about them."""

    async def matching_ids(self, tenant_id: str, where: CustomerFilter, cap: int) -> list[str]:
        """Up to ``cap`` ids of the tenant's customers matching ``where``, in id order."""
        conn = await self._conn()
        result = await conn.execute(
            sa.select(customers.c.customer_id)
            .where(*customer_conditions(conn, tenant_id, where))
            .order_by(customers.c.customer_id)
            .limit(cap)
        )
        return list(result.scalars())

    async def existing_ids(self, tenant_id: str, customer_ids: Sequence[str]) -> list[str]:
        """Those of these customers that exist, in id order (no locks: for counting)."""
        conn = await self._conn()
        found: list[str] = []
        for chunk in _chunks(sorted(set(customer_ids))):
            result = await conn.execute(
                sa.select(customers.c.customer_id).where(
                    customers.c.tenant_id == tenant_id, customers.c.customer_id.in_(chunk)
                )
            )
            found.extend(result.scalars())
        return sorted(found)

    async def tagged(self, tenant_id: str, customer_ids: Sequence[str], tag: str) -> set[str]:
        conn = await self._conn()
        t = customer_tags.c
        found: set[str] = set()
        for chunk in _chunks(list(customer_ids)):
            result = await conn.execute(
                sa.select(t.customer_id).where(
                    t.tenant_id == tenant_id, t.tag == tag, t.customer_id.in_(chunk)
                )
            )
            found.update(result.scalars())
        return found

    async def add_tag(
        self, tenant_id: str, customer_ids: Sequence[str], tag: str, now: datetime
    ) -> None:
        if not customer_ids:
            return
        conn = await self._conn()
        statement = _insert_or_ignore(conn, customer_tags, ("tenant_id", "customer_id", "tag"))
        for chunk in _chunks(sorted(customer_ids), 1_000):
            await conn.execute(
                statement,
                [
                    {"tenant_id": tenant_id, "customer_id": cid, "tag": tag, "created_at": now}
                    for cid in chunk
                ],
            )

    async def remove_tag(self, tenant_id: str, customer_ids: Sequence[str], tag: str) -> None:
        conn = await self._conn()
        t = customer_tags.c
        for chunk in _chunks(sorted(customer_ids)):
            await conn.execute(
                sa.delete(customer_tags).where(
                    t.tenant_id == tenant_id, t.tag == tag, t.customer_id.in_(chunk)
                )
            )

    async def tags_of(self, tenant_id: str, customer_id: str) -> list[str]:
        conn = await self._conn()
        t = customer_tags.c
        result = await conn.execute(
            sa.select(t.tag)
            .where(t.tenant_id == tenant_id, t.customer_id == customer_id)
            .order_by(t.tag)
        )
        return list(result.scalars())

    async def delete_customers(self, tenant_id: str, customer_ids: Sequence[str]) -> int:
        """Delete these customers (lock them first, in id order) with their events, feature
        profiles, score histories, risk level changes and tags; how many were deleted."""
        conn = await self._conn()
        deleted = 0
        for chunk in _chunks(sorted(customer_ids)):
            for table in (
                events,
                customer_features,
                customer_scores,
                customer_risk_changes,
                customer_tags,
            ):
                await conn.execute(
                    sa.delete(table).where(
                        table.c.tenant_id == tenant_id, table.c.customer_id.in_(chunk)
                    )
                )
            result = await conn.execute(
                sa.delete(customers).where(
                    customers.c.tenant_id == tenant_id, customers.c.customer_id.in_(chunk)
                )
            )
            deleted += int(result.rowcount)
        # The tenant's daily risk rollup counted them on past days: computed again when needed.
        await conn.execute(
            sa.delete(customer_risk_days).where(customer_risk_days.c.tenant_id == tenant_id)
        )
        return deleted


class CohortRepository(_Repository):
    async def add(self, row: Mapping[str, Any]) -> None:
        conn = await self._conn()
        await conn.execute(sa.insert(customer_cohorts), [dict(row)])

    async def get(self, tenant_id: str, cohort_id: str) -> Any:
        conn = await self._conn()
        k = customer_cohorts.c
        result = await conn.execute(
            sa.select(customer_cohorts).where(k.tenant_id == tenant_id, k.id == cohort_id)
        )
        return result.first()

    async def by_name(self, tenant_id: str, name: str) -> Any:
        conn = await self._conn()
        k = customer_cohorts.c
        result = await conn.execute(sa.select(k.id).where(k.tenant_id == tenant_id, k.name == name))
        return result.first()

    async def all(self, tenant_id: str) -> Sequence[Any]:
        conn = await self._conn()
        k = customer_cohorts.c
        result = await conn.execute(
            sa.select(customer_cohorts).where(k.tenant_id == tenant_id).order_by(k.name)
        )
        return result.all()

    async def count(self, tenant_id: str) -> int:
        conn = await self._conn()
        result = await conn.execute(
            sa.select(sa.func.count())
            .select_from(customer_cohorts)
            .where(customer_cohorts.c.tenant_id == tenant_id)
        )
        return int(result.scalar_one())

    async def update(self, tenant_id: str, cohort_id: str, values: Mapping[str, Any]) -> None:
        conn = await self._conn()
        k = customer_cohorts.c
        await conn.execute(
            sa.update(customer_cohorts)
            .where(k.tenant_id == tenant_id, k.id == cohort_id)
            .values(**values)
        )

    async def delete(self, tenant_id: str, cohort_id: str) -> bool:
        conn = await self._conn()
        k = customer_cohorts.c
        result = await conn.execute(
            sa.delete(customer_cohorts).where(k.tenant_id == tenant_id, k.id == cohort_id)
        )
        return bool(result.rowcount)

    async def stats(self, tenant_id: str, where: CustomerFilter) -> dict[str, Any]:
        """Size, members per risk level, mean probability and Σ probability * 90-day spend of
        the tenant's customers matching ``where`` (one grouped query)."""
        conn = await self._conn()
        c, f = customers.c, customer_features.c
        spend = sa.func.coalesce(f.features["spend_last_90d"].as_float(), 0.0)
        query = (
            sa.select(
                c.risk_level,
                sa.func.count(),
                sa.func.sum(c.churn_probability),
                sa.func.count(c.churn_probability),
                sa.func.sum(c.churn_probability * spend),
            )
            .select_from(customers.outerjoin(customer_features, _same_customer()))
            .where(*customer_conditions(conn, tenant_id, where))
            .group_by(c.risk_level)
        )
        size = scored = 0
        total_p = revenue = 0.0
        levels: dict[str, int] = {}
        for level, members, sum_p, n_scored, at_risk in await conn.execute(query):
            levels[level or "unscored"] = int(members)
            size += int(members)
            scored += int(n_scored or 0)
            total_p += float(sum_p or 0.0)
            revenue += float(at_risk or 0.0)
        return {
            "size": size,
            "risk_levels": levels,
            "mean_probability": total_p / scored if scored else None,
            "revenue_at_risk": round(revenue, 2),
        }


@dataclass(frozen=True, slots=True)
class RiskChange:
    """A customer's latest risk level changed (``from_level`` ``None``: their first score)."""

    tenant_id: str
    customer_id: str
    changed_at: datetime
    from_level: str | None
    to_level: str


#: Risk levels, lowest first: a change to a later one is a rise.
RISK_ORDER = ("low", "medium", "high")


def _rank(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.case({level: rank for rank, level in enumerate(RISK_ORDER, 1)}, value=column)


def _day(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The UTC day of a stored time (times are stored as naive UTC)."""
    return sa.func.date(column)


def as_date(value: Any) -> date:
    """A ``DATE()`` result: a date on MySQL, ``YYYY-MM-DD`` text on SQLite."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


class DashboardRepository(_Repository):
    """The customers' part of the dashboard and of cohort trends: the score distribution and
    the risk level changes, grouped per UTC day."""

    async def add_risk_changes(self, changes: Sequence[RiskChange]) -> None:
        if not changes:
            return
        conn = await self._conn()
        for chunk in _chunks(list(changes), 1_000):
            await conn.execute(
                sa.insert(customer_risk_changes),
                [
                    {
                        "tenant_id": ch.tenant_id,
                        "customer_id": ch.customer_id,
                        "changed_at": ch.changed_at,
                        "day": ch.changed_at.astimezone(UTC).date(),
                        "from_level": ch.from_level,
                        "to_level": ch.to_level,
                    }
                    for ch in chunk
                ],
            )

    def _members(
        self, conn: AsyncConnection, query: Any, tenant_id: str, where: CustomerFilter | None
    ) -> Any:
        """``query`` over risk changes, limited to the customers matching ``where`` now."""
        if where is None:
            return query
        return query.join(customers, _same_customer(customer_risk_changes)).where(
            *customer_conditions(conn, tenant_id, where)
        )

    async def histogram(self, tenant_id: str, bins: int) -> list[int]:
        """Scored customers per equal-width probability bin over [0, 1] (1.0 in the last)."""
        conn = await self._conn()
        c = customers.c
        scaled = c.churn_probability * bins
        # FLOOR: MariaDB's CAST to an integer rounds; SQLite's truncates (and may lack FLOOR).
        index = sa.func.floor(scaled) if _is_mysql(conn) else sa.cast(scaled, sa.Integer)
        query = (
            sa.select(index.label("bin"), sa.func.count())
            .where(c.tenant_id == tenant_id, c.churn_probability.is_not(None))
            .group_by("bin")
        )
        counts = [0] * bins
        for position, n in await conn.execute(query):
            counts[min(max(int(position), 0), bins - 1)] += int(n)
        return counts

    async def risen(self, tenant_id: str, since: datetime) -> int:
        """How many customers' risk level rose at least once since ``since``."""
        conn = await self._conn()
        r = customer_risk_changes.c
        query = sa.select(sa.func.count(sa.distinct(r.customer_id))).where(
            r.tenant_id == tenant_id,
            r.day >= since.astimezone(UTC).date(),
            r.changed_at >= since,
            r.from_level.is_not(None),
            _rank(r.to_level) > _rank(r.from_level),
        )
        return int((await conn.execute(query)).scalar_one())

    async def changes_by_day(
        self, tenant_id: str, last_day: date, where: CustomerFilter | None = None
    ) -> list[tuple[date, str | None, str, int]]:
        """Risk level changes up to ``last_day`` per (day, from level, to level)."""
        conn = await self._conn()
        r, c = customer_risk_changes.c, customers.c
        query = sa.select(r.day, r.from_level, r.to_level, sa.func.count()).where(
            r.tenant_id == tenant_id, r.day <= last_day
        )
        if where is not None:
            # The members first, then each one's changes, day and levels read from their index
            # alone. Left to choose, MariaDB reads every change of the tenant and looks its
            # customer up: about a second at 100k customers (``bench/dashboard.py``).
            query = (
                query.select_from(customers)
                .join(
                    customer_risk_changes,
                    # The changes' side first: written as ``_same_customer`` writes it, SQLite
                    # reads each customer's row instead of a covering index (TestPlans).
                    sa.and_(r.tenant_id == c.tenant_id, r.customer_id == c.customer_id),
                )
                .where(*customer_conditions(conn, tenant_id, where))
                .prefix_with("STRAIGHT_JOIN", dialect="mysql")
            )
        query = query.group_by(r.day, r.from_level, r.to_level)
        return [
            (as_date(d), from_level, to_level, int(n))
            for d, from_level, to_level, n in await conn.execute(query)
        ]

    async def risen_by_day(
        self,
        tenant_id: str,
        first_day: date,
        last_day: date,
        where: CustomerFilter | None = None,
    ) -> dict[date, int]:
        """Per day from ``first_day`` to ``last_day``: how many customers' level rose."""
        conn = await self._conn()
        r = customer_risk_changes.c
        query = sa.select(r.day, sa.func.count(sa.distinct(r.customer_id))).where(
            r.tenant_id == tenant_id,
            r.day >= first_day,
            r.day <= last_day,
            r.from_level.is_not(None),
            _rank(r.to_level) > _rank(r.from_level),
        )
        query = self._members(conn, query, tenant_id, where).group_by(r.day)
        return {as_date(d): int(n) for d, n in await conn.execute(query)}

    async def created_by_day(
        self, tenant_id: str, until: datetime, where: CustomerFilter | None = None
    ) -> list[tuple[date, int]]:
        """Customers (matching ``where``) created before ``until``, per day of creation."""
        conn = await self._conn()
        c = customers.c
        day = _day(c.created_at).label("day")
        query = (
            sa.select(day, sa.func.count())
            .where(*customer_conditions(conn, tenant_id, where), c.created_at < until)
            .group_by(day)
        )
        return [(as_date(d), int(n)) for d, n in await conn.execute(query)]

    async def level_counts(self, tenant_id: str) -> dict[str | None, int]:
        """The tenant's customers per latest risk level now (``None``: unscored)."""
        conn = await self._conn()
        c = customers.c
        result = await conn.execute(
            sa.select(c.risk_level, sa.func.count())
            .where(c.tenant_id == tenant_id)
            .group_by(c.risk_level)
        )
        return {level: int(n) for level, n in result}

    async def stored_days(
        self, tenant_id: str, first_day: date, last_day: date
    ) -> list[sa.Row[Any]]:
        """The tenant's rolled-up days from ``first_day`` to ``last_day`` that are stored."""
        conn = await self._conn()
        d = customer_risk_days.c
        result = await conn.execute(
            sa.select(customer_risk_days).where(
                d.tenant_id == tenant_id, d.day >= first_day, d.day <= last_day
            )
        )
        return list(result.all())

    async def store_days(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store rolled-up days; a day stored meanwhile (a concurrent trend) is kept."""
        if not rows:
            return
        conn = await self._conn()
        await conn.execute(
            _insert_or_ignore(conn, customer_risk_days, ("tenant_id", "day")), list(rows)
        )

    async def forget_days(self, tenant_id: str, since: date) -> None:
        """Drop the tenant's rolled-up days from ``since`` on (their history changed)."""
        conn = await self._conn()
        d = customer_risk_days.c
        await conn.execute(
            sa.delete(customer_risk_days).where(d.tenant_id == tenant_id, d.day >= since)
        )


def period_index(conn: AsyncConnection, period: str) -> sa.ColumnElement[int]:
    """An event's ``occurred_at`` as a period number: months since year 0 (``year * 12 +
    month - 1``), or weeks since Monday 0001-01-01 (``(date ordinal - 1) // 7``, so a week
    runs Monday to Sunday, as ISO weeks do). ``churn_customers.retention`` names them back."""
    at = events.c.occurred_at
    if _is_mysql(conn):
        if period == "month":
            return sa.func.year(at) * 12 + sa.func.month(at) - 1
        # TO_DAYS counts from year 0: TO_DAYS('0001-01-01') is 366.
        return (sa.func.to_days(at) - 366) // 7
    # SQLite keeps UTCDateTime as text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    if period == "month":
        year = sa.cast(sa.func.substr(at, 1, 4), sa.Integer)
        month = sa.cast(sa.func.substr(at, 6, 2), sa.Integer)
        return year * 12 + month - 1
    # julianday('0001-01-01') is 1721425.5; integer division of a whole number of days.
    days = sa.cast(sa.func.julianday(sa.func.substr(at, 1, 10)) - 1721425.5, sa.Integer)
    return days // 7


class RetentionRepository(_Repository):
    """Reads for retention curves: a tenant's ``order_placed`` events, per period."""

    async def last_order_at(self, tenant_id: str) -> datetime | None:
        """When the tenant's latest order was placed (none: no order at all)."""
        conn = await self._conn()
        e = events.c
        result = await conn.execute(
            sa.select(sa.func.max(e.occurred_at)).where(
                e.tenant_id == tenant_id, e.type == "order_placed"
            )
        )
        value: Any = result.scalar()
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(moment, datetime)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    async def order_periods(
        self, tenant_id: str, period: str, where: CustomerFilter | None, *, partition: int = 5_000
    ) -> AsyncIterator[set[int]]:
        """For each customer matching ``where`` who placed an order: the distinct periods
        (:func:`period_index`) of their orders, one set per customer.

        One streamed statement grouped by customer alone, in the order of
        ``ix_events_tenant_type_customer_occurred``, which covers it: neither database builds
        a temporary table of (customer, period) pairs (MariaDB took minutes over one at 100k
        customers) nor visits the event rows, and memory stays flat. A customer's periods come
        as one ``GROUP_CONCAT(DISTINCT …)`` text, at most a few thousand periods long (well
        under MariaDB's default ``group_concat_max_len`` of 1 MB)."""
        conn = await self._conn()
        e = events.c
        p = period_index(conn, period)
        conditions = [e.tenant_id == tenant_id, e.type == "order_placed"]
        selected = customer_conditions(conn, tenant_id, where)
        if len(selected) > 1:  # a filter beyond the tenant: its customers only
            conditions.append(
                e.customer_id.in_(sa.select(customers.c.customer_id).where(*selected))
            )
        result = await conn.stream(
            sa.select(sa.func.group_concat(sa.distinct(p)))
            .where(*conditions)
            .group_by(e.customer_id)
        )
        async for rows in result.partitions(partition):
            for (periods,) in rows:
                text = periods.decode() if isinstance(periods, bytes) else str(periods)
                yield {int(number) for number in text.split(",")}
