"""Business logic of the customers service. Services take a session and never commit."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_customers.attributes import publish_attributes_changed
from churn_customers.bulk import delete_customers
from churn_customers.cohorts import resolve_segment
from churn_customers.exceptions import (
    ConcurrentIngestError,
    CustomerAlreadyExistsError,
    CustomerNotFoundError,
    EventBatchTooLargeError,
    TrainingSetError,
)
from churn_customers.features import (
    WINDOWED_EVENT_TYPES,
    EventLike,
    FeatureState,
    compute_features,
    point_in_time_rows,
)
from churn_customers.models import outbox
from churn_customers.repository import (
    BulkRepository,
    CustomerRepository,
    DashboardRepository,
    EventRepository,
    ExportRepository,
    FeatureRepository,
    RiskChange,
    ScoreHistoryRepository,
    ScoreRecord,
    ScoreUpdate,
    ScoringInputRepository,
    StoredEvent,
    StoredProfile,
)
from churn_customers.schemas import (
    CustomerCreate,
    CustomerDetail,
    CustomerFeaturesRead,
    CustomerFilter,
    CustomerPage,
    CustomerRead,
    CustomerSort,
    CustomerUpdate,
    EventBatchAccepted,
    EventIn,
    ScoreHistoryItem,
    ScoreHistoryPage,
    ScoringInputsIn,
)
from churn_shared.contracts import (
    PROFILE_FEATURE_NAMES,
    ChurnScoreComputedV1,
    CustomerFeaturesUpdatedV1,
    CustomerTrainingSet,
    EventTrainingSet,
    Topics,
)
from churn_shared.contracts.http import CustomerScoringInput, ScoringInputsPage
from churn_shared.db import utcnow
from churn_shared.errors import (
    BadRequestError,
    UnprocessableError,
)
from churn_shared.kafka import Envelope, enqueue
from churn_shared.logging import get_logger
from churn_shared.pagination import decode_cursor, encode_cursor

log = get_logger(__name__)

PRODUCER = "churn-customers"
FEATURES_EVENT_TYPE = "CustomerFeaturesUpdatedV1"


@dataclass(frozen=True, slots=True)
class TenantScore:
    tenant_id: str
    score: ChurnScoreComputedV1


@dataclass(frozen=True, slots=True)
class RepublishedBatch:
    """One batch of :meth:`EventIngestService.republish_unscored`."""

    #: Profiles put in the outbox again.
    republished: int
    #: The last profile looked at, where the next batch starts; ``None`` when none is left.
    next_after: tuple[str, str] | None


def republish_delay(age: timedelta, grace: timedelta, max_backoff: timedelta) -> timedelta:
    """How long a re-sent profile of this age waits before it may be re-sent again: its age,
    at least ``grace`` and at most ``max_backoff``. A profile that stays unscored is so re-sent
    after about 1, 2, 4 … grace periods, not every round."""
    return min(max(age, grace), max(max_backoff, grace))


def _features_envelope(
    tenant_id: str,
    customer_id: str,
    features: dict[str, float | None],
    as_of: datetime,
    *,
    backfill: bool,
) -> Envelope:
    return Envelope.wrap(
        event_type=FEATURES_EVENT_TYPE,
        tenant_id=tenant_id,
        producer=PRODUCER,
        key=customer_id,
        occurred_at=as_of,
        payload=CustomerFeaturesUpdatedV1(
            customer_id=customer_id, features=features, as_of=as_of, backfill=backfill
        ),
    )


class EventIngestService:
    """Stores raw events and keeps the affected customers' feature profiles current."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        max_batch: int | None = None,
        events: EventRepository | None = None,
        customers: CustomerRepository | None = None,
        features: FeatureRepository | None = None,
    ) -> None:
        """The repositories default to the SQL ones on ``session``; tests pass fakes."""
        self._session = session
        self._max_batch = max_batch
        self._events = events if events is not None else EventRepository(session)
        self._customers = customers if customers is not None else CustomerRepository(session)
        self._features = features if features is not None else FeatureRepository(session)

    async def record_events(
        self, tenant_id: str, batch: Sequence[EventIn], *, backfill: bool = False
    ) -> EventBatchAccepted:
        """Store new events (an id already stored, or repeated in the batch, is a duplicate),
        create unknown customers, bring the affected customers' features up to date (their
        stored feature states advanced by the new events: see :meth:`_advance_states`) and
        enqueue one ``CustomerFeaturesUpdatedV1`` per affected customer — all in the caller's
        transaction."""
        if self._max_batch is not None and len(batch) > self._max_batch:
            raise EventBatchTooLargeError(len(batch), self._max_batch)
        unique: list[EventIn] = []
        seen: set[str] = set()
        for event in batch:
            if event.event_id not in seen:
                seen.add(event.event_id)
                unique.append(event)
        if not unique:
            return EventBatchAccepted(accepted=0, duplicates=0)

        now = utcnow()
        # Lock (creating where needed) the batch's customers first, so the reads below see
        # every event a concurrent ingest for the same customers committed before us.
        await self._customers.ensure_exist(
            tenant_id, list(dict.fromkeys(e.customer_id for e in unique)), now
        )
        stored = await self._events.existing_event_ids(tenant_id, [e.event_id for e in unique])
        fresh = [e for e in unique if e.event_id not in stored]
        result = EventBatchAccepted(accepted=len(fresh), duplicates=len(batch) - len(fresh))
        if not fresh:
            return result

        affected = list(dict.fromkeys(e.customer_id for e in fresh))
        try:
            await self._events.insert_many(
                [
                    {
                        "tenant_id": tenant_id,
                        "event_id": e.event_id,
                        "customer_id": e.customer_id,
                        "type": e.type,
                        "occurred_at": e.occurred_at,
                        "properties": e.properties,
                        "received_at": now,
                    }
                    for e in fresh
                ]
            )
        except IntegrityError as exc:
            raise ConcurrentIngestError() from exc
        await self._customers.mark_seen(tenant_id, affected, now)
        await self._recompute_and_publish(
            tenant_id, affected, now, backfill=backfill, new_events=fresh
        )
        return result

    async def refresh_stale_profiles(
        self, max_age: timedelta, limit: int, now: datetime | None = None
    ) -> int:
        """Recompute and republish up to ``limit`` profiles older than ``max_age``.

        Time-based features (days since the last order, the 30/90-day windows, account age)
        change while a customer does nothing; without this, a customer who simply goes quiet —
        the commonest churn — would keep the score of their last event forever."""
        now = now or utcnow()
        refreshed = 0
        for tenant_id, customer_ids in (await self._features.stale(now - max_age, limit)).items():
            alive = await self._customers.lock_existing(tenant_id, customer_ids)
            for orphan in set(customer_ids) - set(alive):  # deleted meanwhile: drop, never retry
                await self._features.delete_for_customer(tenant_id, orphan)
            await self._recompute_and_publish(tenant_id, alive, now, backfill=False)
            refreshed += len(alive)
        return refreshed

    async def republish_unscored(
        self,
        *,
        grace: timedelta,
        max_backoff: timedelta,
        limit: int,
        after: tuple[str, str] | None = None,
        now: datetime | None = None,
    ) -> RepublishedBatch:
        """Put back in the outbox, as they are stored, up to ``limit`` profiles (in key order,
        after ``after``) that no score is as new as, computed more than ``grace`` ago and not
        re-sent within their backoff (:func:`republish_delay`).

        The outbox row of a profile is deleted once the broker acknowledges it; a broker that
        then loses it (the embedded, in-memory one on a restart) leaves the profile unscored
        until the next refresh. This re-sends it as a live (non-backfill) update. The customers
        are locked in id order, as an ingest locks them, and the profiles read again under the
        lock: a profile changed meanwhile was published by its own change."""
        now = now or utcnow()
        settled_before = now - grace
        candidates = await self._features.unscored(settled_before, now, limit, after)
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, customer_id in candidates:
            by_tenant.setdefault(tenant_id, []).append(customer_id)
        republished = 0
        for tenant_id, customer_ids in sorted(by_tenant.items()):
            alive = await self._customers.lock_existing(tenant_id, customer_ids)
            profiles = await self._features.lock_unscored(tenant_id, alive, settled_before, now)
            if profiles:
                await self._republish(tenant_id, profiles, now, grace, max_backoff)
                republished += len(profiles)
        return RepublishedBatch(
            republished=republished,
            next_after=candidates[-1] if len(candidates) >= limit else None,
        )

    async def _republish(
        self,
        tenant_id: str,
        profiles: Sequence[StoredProfile],
        now: datetime,
        grace: timedelta,
        max_backoff: timedelta,
    ) -> None:
        await self._features.defer_republish(
            tenant_id,
            {
                p.customer_id: now + republish_delay(now - p.as_of, grace, max_backoff)
                for p in profiles
            },
        )
        await enqueue(
            self._session,
            outbox,
            Topics.CUSTOMER_FEATURES,
            [
                _features_envelope(tenant_id, p.customer_id, p.features, p.as_of, backfill=False)
                for p in profiles
            ],
        )

    async def _recompute_and_publish(
        self,
        tenant_id: str,
        customer_ids: Sequence[str],
        now: datetime,
        *,
        backfill: bool,
        new_events: Sequence[EventIn] = (),
    ) -> None:
        if not customer_ids:
            return
        advanced = await self._advance_states(tenant_id, customer_ids, now, new_events)
        profiles = {cid: state.features(edge) for cid, (state, edge) in advanced.items()}
        await self._features.upsert_many(
            tenant_id, profiles, now, {cid: state for cid, (state, _) in advanced.items()}
        )
        await enqueue(
            self._session,
            outbox,
            Topics.CUSTOMER_FEATURES,
            [
                _features_envelope(tenant_id, cid, features, now, backfill=backfill)
                for cid, features in profiles.items()
            ],
        )

    async def _advance_states(
        self,
        tenant_id: str,
        customer_ids: Sequence[str],
        now: datetime,
        new_events: Sequence[EventIn],
    ) -> dict[str, tuple[FeatureState, Sequence[EventLike]]]:
        """Each customer's :class:`FeatureState` as of ``now`` with the events of its window
        edges (what :meth:`FeatureState.features` needs).

        The stored state advanced by the customer's new events: O(new events + days kept),
        whatever the length of the history. A customer without a usable state, or whose state
        refuses the increment (a late loyalty balance, a future-dated event falling due; see
        ``churn_customers.features``), is rebuilt from their whole history, that customer only.
        The caller has locked the customers."""
        arriving: dict[str, list[EventIn]] = {}
        for event in new_events:
            arriving.setdefault(event.customer_id, []).append(event)
        stored = await self._features.states(tenant_id, customer_ids)
        advanced: dict[str, tuple[FeatureState, Sequence[EventLike]]] = {}
        rebuild: list[str] = []
        for cid in customer_ids:
            state = stored.get(cid)
            if state is not None and state.advance(arriving.get(cid, ()), now):
                advanced[cid] = (state, ())
            else:
                rebuild.append(cid)
        edges = await self._events.in_ranges(
            tenant_id,
            {cid: state.edge_ranges() for cid, (state, _) in advanced.items()},
            WINDOWED_EVENT_TYPES,
        )
        for cid, edge in edges.items():
            advanced[cid] = (advanced[cid][0], edge)
        if rebuild:
            history = await self._events.for_customers(tenant_id, rebuild)
            for cid in rebuild:
                advanced[cid] = (FeatureState.from_events(history[cid], now), history[cid])
            refused = [cid for cid in rebuild if cid in stored]
            if refused:
                log.info("feature states rebuilt from history", customers=len(refused))
        return {cid: advanced[cid] for cid in customer_ids}

    async def record_scores(self, scores: Sequence[TenantScore]) -> None:
        """Keep each customer's latest score (an older score than the stored one is ignored),
        add every score of a known customer to their history and note the changes of their
        latest risk level (the dashboard's trends)."""
        latest = await record_score_history(self._session, scores)
        changes = risk_changes(latest, scores)
        dashboard = DashboardRepository(self._session)
        await dashboard.add_risk_changes(changes)
        # A change on a past day alters that day's rolled-up trend and every later one's.
        today = utcnow().date()
        earliest: dict[str, date] = {}
        for change in changes:
            day = change.changed_at.astimezone(UTC).date()
            if day < today and day < earliest.get(change.tenant_id, today):
                earliest[change.tenant_id] = day
        for tenant_id, day in sorted(earliest.items()):
            await dashboard.forget_days(tenant_id, day)
        await self._customers.apply_scores(
            ScoreUpdate(
                tenant_id=s.tenant_id,
                customer_id=s.score.customer_id,
                churn_probability=s.score.churn_probability,
                risk_level=s.score.risk_level,
                model_version=s.score.model_version,
                scored_at=s.score.scored_at,
            )
            for s in scores
        )


#: A customer's latest risk level and its time, by (tenant id, customer id).
LatestLevels = dict[tuple[str, str], tuple[str | None, datetime | None]]


async def record_score_history(
    session: AsyncSession, scores: Sequence[TenantScore]
) -> LatestLevels:
    """Add these scores to their customers' histories (scores of unknown customers are
    dropped); the known customers' latest levels before these scores. The customers are
    locked in id order first, as every writer locks them."""
    customers = CustomerRepository(session)
    by_tenant: dict[str, list[TenantScore]] = {}
    for s in scores:
        by_tenant.setdefault(s.tenant_id, []).append(s)
    records: list[ScoreRecord] = []
    latest: LatestLevels = {}
    for tenant_id, tenant_scores in sorted(by_tenant.items()):
        levels = await customers.lock_levels(
            tenant_id, [s.score.customer_id for s in tenant_scores]
        )
        latest.update(((tenant_id, cid), level) for cid, level in levels.items())
        known = set(levels)
        records.extend(
            ScoreRecord(
                tenant_id=tenant_id,
                customer_id=s.score.customer_id,
                scored_at=s.score.scored_at,
                churn_probability=s.score.churn_probability,
                risk_level=s.score.risk_level,
                model_version=s.score.model_version,
                drivers=[d.model_dump(mode="json") for d in s.score.drivers],
            )
            for s in tenant_scores
            if s.score.customer_id in known
        )
    await ScoreHistoryRepository(session).add_many(records)
    return latest


def risk_changes(latest: LatestLevels, scores: Sequence[TenantScore]) -> list[RiskChange]:
    """The changes of the customers' latest risk level that these scores make, applied
    oldest first as :meth:`CustomerRepository.apply_scores` applies them (a score older than
    the customer's latest is ignored); unknown customers have none."""
    current = dict(latest)
    changes: list[RiskChange] = []
    for s in sorted(scores, key=lambda s: (s.tenant_id, s.score.customer_id, s.score.scored_at)):
        key = (s.tenant_id, s.score.customer_id)
        if key not in current:
            continue
        level, at = current[key]
        if at is not None and s.score.scored_at < at:
            continue
        if s.score.risk_level != level:
            changes.append(
                RiskChange(
                    tenant_id=s.tenant_id,
                    customer_id=s.score.customer_id,
                    changed_at=s.score.scored_at,
                    from_level=level,
                    to_level=s.score.risk_level,
                )
            )
        current[key] = (s.score.risk_level, s.score.scored_at)
    return changes


def _cursor_values(sort: CustomerSort, row: Any) -> list[Any]:
    if sort == "customer_id":
        return [row.customer_id]
    if sort == "-churn_probability":
        return [row.churn_probability, row.customer_id]
    return [row.updated_at.isoformat(), row.customer_id]


def _decode_after(sort: CustomerSort, cursor: str | None) -> list[Any] | None:
    after = decode_cursor(cursor, 1 if sort == "customer_id" else 2)
    if after is None:
        return None
    try:
        if sort == "customer_id":
            valid = isinstance(after[0], str)
        elif sort == "-churn_probability":
            valid = isinstance(after[1], str) and (
                after[0] is None or isinstance(after[0], int | float)
            )
        else:
            after[0] = datetime.fromisoformat(after[0])
            valid = after[0].tzinfo is not None and isinstance(after[1], str)
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise BadRequestError("The cursor is not valid for this sort order.")
    return after


class CustomerService:
    """Customer CRUD, scoped to one tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._customers = CustomerRepository(session)
        self._events = EventRepository(session)
        self._features = FeatureRepository(session)

    async def list_customers(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: str | None,
        sort: CustomerSort,
        where: CustomerFilter | None = None,
    ) -> CustomerPage:
        """One page of the tenant's customers matching ``where``, in ``sort`` order. The
        cursor holds only the last row's sort key: send the same filter with it."""
        after = _decode_after(sort, cursor)
        await resolve_segment(self._customers.session, tenant_id, where)
        rows = await self._customers.page(tenant_id, sort, limit, after, where)
        next_cursor = (
            encode_cursor(_cursor_values(sort, rows[limit - 1])) if len(rows) > limit else None
        )
        return CustomerPage(
            items=[CustomerRead.model_validate(row) for row in rows[:limit]],
            next_cursor=next_cursor,
        )

    async def create_customer(self, tenant_id: str, data: CustomerCreate) -> CustomerRead:
        if await self._customers.get(tenant_id, data.customer_id) is not None:
            raise CustomerAlreadyExistsError(data.customer_id)
        now = utcnow()
        try:
            await self._customers.insert_many(
                [
                    {
                        "tenant_id": tenant_id,
                        "customer_id": data.customer_id,
                        "attributes": data.attributes,
                        "created_at": now,
                        "updated_at": now,
                    }
                ]
            )
        except IntegrityError as exc:
            raise CustomerAlreadyExistsError(data.customer_id) from exc
        if data.attributes:
            await publish_attributes_changed(
                self._session, tenant_id, {data.customer_id: data.attributes}, now
            )
        return await self._read(tenant_id, data.customer_id)

    async def get_customer(self, tenant_id: str, customer_id: str) -> CustomerDetail:
        row = await self._customers.get(tenant_id, customer_id)
        if row is None:
            raise CustomerNotFoundError(customer_id)
        detail = CustomerDetail.model_validate(row)
        detail.tags = await BulkRepository(self._customers.session).tags_of(tenant_id, customer_id)
        profile = await self._features.get(tenant_id, customer_id)
        if profile is not None:
            detail.features = profile.features
            detail.features_as_of = profile.as_of
        return detail

    async def update_customer(
        self, tenant_id: str, customer_id: str, data: CustomerUpdate
    ) -> CustomerRead:
        row = await self._customers.get(tenant_id, customer_id)
        if row is None:
            raise CustomerNotFoundError(customer_id)
        merged = dict(row.attributes or {})
        for key, value in data.attributes.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        now = utcnow()
        await self._customers.set_attributes(tenant_id, customer_id, merged, now)
        if merged != (row.attributes or {}):
            await publish_attributes_changed(self._session, tenant_id, {customer_id: merged}, now)
        return await self._read(tenant_id, customer_id)

    async def delete_customer(self, tenant_id: str, customer_id: str) -> None:
        """Delete the customer with their events, feature profile, score history and tags, and
        tell the other services (``CustomerDeletedV1`` through the outbox)."""
        if not await delete_customers(self._customers.session, tenant_id, [customer_id]):
            raise CustomerNotFoundError(customer_id)

    async def score_history(
        self, tenant_id: str, customer_id: str, *, limit: int, cursor: str | None
    ) -> ScoreHistoryPage:
        """The customer's scores, newest first, in keyset pages."""
        if await self._customers.get(tenant_id, customer_id) is None:
            raise CustomerNotFoundError(customer_id)
        raw = decode_cursor(cursor, 2)
        after: tuple[datetime, int] | None = None
        if raw is not None:
            try:
                moment = datetime.fromisoformat(raw[0])
                if moment.tzinfo is None or not isinstance(raw[1], int):
                    raise ValueError(raw)
            except (TypeError, ValueError):
                raise BadRequestError("The cursor is not valid.") from None
            after = (moment, raw[1])
        rows = await ScoreHistoryRepository(self._customers.session).page(
            tenant_id, customer_id, limit, after
        )
        last = rows[limit - 1] if len(rows) > limit else None
        return ScoreHistoryPage(
            items=[ScoreHistoryItem.model_validate(row) for row in rows[:limit]],
            next_cursor=encode_cursor([last.scored_at.isoformat(), last.id]) if last else None,
        )

    async def prune_score_history(self, older_than: datetime, limit: int) -> int:
        """Forget up to ``limit`` scores older than ``older_than`` (every tenant's); each
        customer's latest score stays, whatever its age."""
        return await ScoreHistoryRepository(self._customers.session).prune_before(older_than, limit)

    async def get_features(self, tenant_id: str, customer_id: str) -> CustomerFeaturesRead:
        """The stored profile; a customer without events gets the empty profile as of now."""
        if await self._customers.get(tenant_id, customer_id) is None:
            raise CustomerNotFoundError(customer_id)
        profile = await self._features.get(tenant_id, customer_id)
        if profile is None:
            now = utcnow()
            return CustomerFeaturesRead(
                customer_id=customer_id, features=compute_features([], now), as_of=now
            )
        return CustomerFeaturesRead(
            customer_id=customer_id, features=profile.features, as_of=profile.as_of
        )

    async def scoring_inputs(self, tenant_id: str, query: ScoringInputsIn) -> ScoringInputsPage:
        """A page of what a model reads about the customers matching ``query.filter`` (profile
        and imported attributes), in id order; with their number when asked for."""
        session = self._customers.session
        await resolve_segment(session, tenant_id, query.filter)
        total = None
        if query.count_up_to is not None:
            total = await ExportRepository(session).count_up_to(
                tenant_id, query.filter, query.count_up_to
            )
        rows = (
            await ScoringInputRepository(session).page(
                tenant_id, query.filter, query.after, query.limit
            )
            if query.limit
            else []
        )
        return ScoringInputsPage(
            customers=[
                CustomerScoringInput(
                    customer_id=row.customer_id,
                    features=row.features,
                    attributes=row.attributes or {},
                )
                for row in rows
            ],
            next_after=rows[-1].customer_id if len(rows) == query.limit and rows else None,
            total=total,
        )

    async def _read(self, tenant_id: str, customer_id: str) -> CustomerRead:
        row = await self._customers.get(tenant_id, customer_id)
        if row is None:  # pragma: no cover - read right after a write in one transaction
            raise CustomerNotFoundError(customer_id)
        return CustomerRead.model_validate(row)


# --------------------------------------------------------------------------- training sets

HORIZONS = (30, 60, 90, 180)
#: Events handed to a worker thread at a time when building a point-in-time set.
_COMPUTE_BATCH_EVENTS = 20_000


def parse_cutoff(text: str) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 datetime with a time zone."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnprocessableError(f"cutoff {text!r} is not a date (YYYY-MM-DD)") from None
    if moment.tzinfo is None:
        raise UnprocessableError(f"cutoff {text!r} needs a time zone (or give a date)")
    return moment.astimezone(UTC)


def format_cutoff(cutoff: datetime) -> str:
    if cutoff == datetime(cutoff.year, cutoff.month, cutoff.day, tzinfo=UTC):
        return cutoff.date().isoformat()
    return cutoff.isoformat()


def _compute_batch(
    batch: list[tuple[str, list[StoredEvent]]], cutoffs: Sequence[datetime], horizon: timedelta
) -> list[tuple[str, int, dict[str, float | None], int]]:
    return [
        (cid, index, features, label)
        for cid, history in batch
        for index, features, label in point_in_time_rows(history, cutoffs, horizon)
    ]


class TrainingSetService:
    """Training sets built from a tenant's data (read only)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._customers = CustomerRepository(session)
        self._events = EventRepository(session)

    async def customer_training_set(self, tenant_id: str, label: str) -> CustomerTrainingSet:
        """Imported attributes of the customers that have a value for ``label``."""
        labelled = [
            (cid, attributes)
            for cid, attributes in await self._customers.all_attributes(tenant_id)
            if attributes.get(label) is not None
        ]
        if not labelled:
            raise TrainingSetError(
                f"No customer has a value for the label attribute {label!r}; import a file "
                "with that column first."
            )
        names: dict[str, None] = {}
        for _, attributes in labelled:
            names.update(dict.fromkeys(k for k in attributes if k != "customer_id"))
        columns = list(names)
        return CustomerTrainingSet(
            columns=["customer_id", *columns],
            rows=[[cid, *(a.get(n) for n in columns)] for cid, a in labelled],
            id_column="customer_id",
        )

    async def events_training_set(
        self,
        tenant_id: str,
        cutoffs: Sequence[datetime],
        horizon_days: int,
        *,
        require_known_labels: bool = True,
    ) -> EventTrainingSet:
        """Point-in-time rows for each cutoff (see :func:`point_in_time_rows`), streamed from
        the tenant's history one customer at a time.

        With ``require_known_labels`` (the HTTP route) a cutoff whose horizon ends after the
        tenant's latest event is refused: the label would be unknown, not "churned"."""
        if horizon_days not in HORIZONS:
            raise TrainingSetError(f"horizon_days must be one of {list(HORIZONS)}")
        ordered = sorted(set(cutoffs))
        if not ordered:
            raise TrainingSetError("Give at least one cutoff date.")
        horizon = timedelta(days=horizon_days)
        latest = await self._events.latest_occurred_at(tenant_id)
        if latest is None:
            raise TrainingSetError("The tenant has no events yet.")
        end = ordered[-1] + horizon
        if require_known_labels and end > latest:
            raise TrainingSetError(
                f"The horizon of cutoff {format_cutoff(ordered[-1])} ends {end.isoformat()}, "
                f"after the latest event ({latest.isoformat()}): its labels are not known yet.",
                latest_event_at=latest.isoformat(),
            )

        rows: list[tuple[str, int, dict[str, float | None], int]] = []
        batch: list[tuple[str, list[StoredEvent]]] = []
        pending = 0
        async for cid, history in self._events.stream_histories(tenant_id, end):
            batch.append((cid, history))
            pending += len(history)
            if pending >= _COMPUTE_BATCH_EVENTS:
                rows.extend(await asyncio.to_thread(_compute_batch, batch, ordered, horizon))
                batch, pending = [], 0
        if batch:
            rows.extend(await asyncio.to_thread(_compute_batch, batch, ordered, horizon))
        if not rows:
            raise TrainingSetError("No customer has an event at or before the cutoff.")

        labels = [label for *_, label in rows]
        names = list(PROFILE_FEATURE_NAMES)
        cutoff_text = [format_cutoff(c) for c in ordered]
        return EventTrainingSet(
            feature_names=names,
            customer_ids=[cid for cid, *_ in rows],
            features=[[features[n] for n in names] for _, _, features, _ in rows],
            labels=labels,
            cutoff=cutoff_text[-1],
            cutoffs=cutoff_text,
            row_cutoffs=[cutoff_text[index] for _, index, _, _ in rows],
            horizon_days=horizon_days,
            days_since_last_order=[f["days_since_last_order"] for _, _, f, _ in rows],
            positive_rate=sum(labels) / len(labels),
            n_customers=len({cid for cid, *_ in rows}),
            n_rows=len(rows),
        )
