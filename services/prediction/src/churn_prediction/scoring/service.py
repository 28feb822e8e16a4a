"""Scoring with the model serving the caller's tenant: one customer, a batch, the online stream.

HTTP scoring uses the tenant's champion whatever it reads (behavioural features or imported
attributes); scoring by ``customer_id`` and the online stream use the tenant's online model (its
champion when that reads the behavioural features, else the global default). Every model goes
through the same :class:`~churn_prediction.scoring.scorer.Scorer` calls, in a worker thread.
The service never commits; the caller owns the transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.clients import CustomerFeaturesClient
from churn_prediction.config import Settings
from churn_prediction.exceptions import CustomersUnavailableError, InvalidPredictionInputError
from churn_prediction.models import PRODUCER, outbox
from churn_prediction.recommendations.rules import default_rules, recommend
from churn_prediction.scoring.repository import (
    ScoreRepository,
    ShadowScoreRepository,
    delete_scores_of,
)
from churn_prediction.scoring.schemas import ModelRead, PredictionCreate, PredictionRead
from churn_prediction.scoring.scorer import (
    DriverRow,
    Explained,
    FeatureColumns,
    FloatArray,
    InvalidFeatureValueError,
    Scorer,
    risk_level,
    risk_level_codes,
    risk_level_names,
)
from churn_prediction.scoring.serving import ServingModel, ServingModels
from churn_shared.contracts import ChurnScoreComputedV1
from churn_shared.db import utcnow
from churn_shared.kafka import Envelope, enqueue
from churn_shared.logging import get_logger

__all__ = [
    "AttributeChange",
    "BatchInput",
    "FeatureSnapshot",
    "PredictionService",
    "RulesLoader",
    "ScoredBatch",
]

_log = get_logger(__name__)

RulesLoader = Callable[[str], Awaitable[list[dict[str, Any]]]]
RenderedT = TypeVar("RenderedT")


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    """One customer's feature profile to score (from ``customer.features.v1``)."""

    tenant_id: str
    customer_id: str
    features: dict[str, float | None]
    backfill: bool = False
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AttributeChange:
    """One customer's attributes after a change (from ``customer.attributes.v1``)."""

    tenant_id: str
    customer_id: str
    attributes: dict[str, Any]
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Score:
    """One computed score, before it is stored and published."""

    tenant_id: str
    customer_id: str
    probability: float
    drivers: list[DriverRow]
    version: str
    backfill: bool = False
    request_id: str | None = None


class BatchInput(Protocol):
    """A batch request body, parsed against the serving model's features (in the worker thread
    that scores it); :class:`churn_prediction.api.bodies.JsonBatch` is the HTTP one."""

    def columns(self, feature_names: Sequence[str]) -> FeatureColumns: ...


@dataclass(frozen=True, slots=True)
class ScoredBatch:
    """A scored batch, in input order: what the protocol renderers turn into a response."""

    serving: ServingModel
    probabilities: FloatArray
    #: Each row's risk level as its index in ``RISK_LEVELS`` (one byte per row: renderers map
    #: the codes to their own bytes in one NumPy call, no per-row objects).
    level_codes: npt.NDArray[np.uint8]
    #: Each row's top drivers and recommendations, only when asked for.
    drivers: list[list[DriverRow]] | None = None
    recommendations: list[list[dict[str, Any]]] | None = None

    @property
    def n(self) -> int:
        return int(self.probabilities.shape[0])

    @property
    def levels(self) -> npt.NDArray[np.str_]:
        """``low`` / ``medium`` / ``high`` per row, as a NumPy string array."""
        return risk_level_names(self.level_codes)


async def _no_rules(_tenant_id: str) -> list[dict[str, Any]]:
    return default_rules()


def _parse(model: Scorer[Any], columns: FeatureColumns) -> Any:
    try:
        return model.parse(columns)
    except InvalidFeatureValueError as exc:
        raise InvalidPredictionInputError(str(exc)) from exc


def _predict(model: Scorer[Any], columns: FeatureColumns) -> FloatArray:
    """Probabilities (blocking: run it in a thread)."""
    return model.predict(_parse(model, columns))


def _explain(model: Scorer[Any], columns: FeatureColumns, top_k: int) -> Explained:
    """Probabilities and each row's top drivers (blocking: run it in a thread)."""
    return model.explain(_parse(model, columns), top_k)


def _attribute_value(value: Any) -> Any:
    """An attribute as a model reads it: a JSON boolean is the number it was trained as."""
    return int(value) if isinstance(value, bool) else value


def _explain_readable(
    model: Scorer[Any], rows: Sequence[Mapping[str, Any]], top_k: int
) -> tuple[Explained, list[int]]:
    """Probabilities and drivers of the rows the model can read, and which rows those are (a
    row with a value of a type its feature cannot take — text for a number — is left out).
    Blocking: run it in a thread."""
    names = model.feature_names
    try:
        everything = model.explain(model.parse(FeatureColumns.from_mappings(rows, names)), top_k)
        return everything, list(range(len(rows)))
    except ValueError:  # InvalidFeatureValueError, or text in a numeric column
        pass
    readable: list[int] = []
    for i, row in enumerate(rows):
        try:
            model.predict(model.parse(FeatureColumns.from_mappings([row], names)))
        except ValueError:
            continue
        readable.append(i)
    if not readable:
        return Explained(np.empty(0, dtype=np.float64), []), []
    columns = FeatureColumns.from_mappings([rows[i] for i in readable], names)
    return model.explain(model.parse(columns), top_k), readable


def _contract_drivers(drivers: Sequence[DriverRow]) -> list[dict[str, Any]]:
    """Drivers as ``ChurnScoreComputedV1`` carries them: a driver's value is a number or null
    (a category's text is not sent; its feature and contribution are)."""
    return [
        {**d, "value": d["value"] if isinstance(d["value"], int | float) else None} for d in drivers
    ]


async def forget_customers(session: AsyncSession, deleted: Sequence[tuple[str, str]]) -> int:
    """Drop every score and shadow score of these ``(tenant_id, customer_id)`` (customers the
    customers service deleted); how many scores went. Idempotent."""
    by_tenant: dict[str, list[str]] = {}
    for tenant_id, customer_id in deleted:
        by_tenant.setdefault(tenant_id, []).append(customer_id)
    removed = 0
    for tenant_id, customer_ids in sorted(by_tenant.items()):
        removed += await delete_scores_of(session, tenant_id, sorted(set(customer_ids)))
    return removed


class PredictionService:
    """Scores rows with the model serving the caller's tenant."""

    def __init__(
        self,
        models: ServingModels,
        settings: Settings,
        customers: CustomerFeaturesClient | None = None,
        rules: RulesLoader | None = None,
    ) -> None:
        self.models = models
        self.settings = settings
        self.customers = customers
        self.rules = rules or _no_rules

    def _risk(self, probability: float) -> str:
        return risk_level(probability, self.settings.low_risk_below, self.settings.high_risk_from)

    def current_model(self, tenant_id: str) -> ModelRead:
        serving = self.models.for_tenant(tenant_id)
        return ModelRead(
            version=serving.version,
            features=list(serving.model.feature_names),
            created_at=serving.created_at,
            metrics=serving.metrics,
            is_default=serving.tenant_id is None,
        )

    async def predict_one(
        self, tenant_id: str, body: PredictionCreate, *, authorization: str | None
    ) -> PredictionRead:
        """Score one customer, by id (features from the customers service) or by raw features;
        with the top drivers and the recommendations the tenant's rules give for them."""
        features: dict[str, Any]
        if body.customer_id is not None:
            serving = self.models.online_for_tenant(tenant_id)
            if self.customers is None:
                raise CustomersUnavailableError("No customers service is configured.")
            features = dict(
                await self.customers.features(body.customer_id, authorization=authorization)
            )
        else:
            serving = self.models.for_tenant(tenant_id)
            features = dict(body.features or {})
        model = serving.model
        unknown = sorted(set(features) - set(model.feature_names))
        if unknown and body.customer_id is None:
            raise InvalidPredictionInputError(
                f"Unknown features for model {serving.version}: {', '.join(unknown)}."
            )
        texts = sorted(n for n, v in features.items() if isinstance(v, str))
        if texts and model.numeric_only:
            raise InvalidPredictionInputError(
                f"Features must be numbers or null: {', '.join(texts)}."
            )
        columns = FeatureColumns.from_mappings([features], model.feature_names)
        # One row is a ~0.1 ms contributions pass: cheaper on the loop than a hop to a thread.
        explained = _explain(model, columns, self.settings.drivers_top_k)
        drivers = explained.drivers[0]
        probability = float(explained.probabilities[0])
        rules = await self.rules(tenant_id)
        return PredictionRead.model_validate(
            {
                "customer_id": body.customer_id,
                "churn_probability": probability,
                "risk_level": self._risk(probability),
                "model_version": serving.version,
                "drivers": drivers,
                "recommendations": recommend(drivers, rules),
            }
        )

    def served(self, tenant_id: str, name: str) -> ServingModel | None:
        """The model an inference protocol names (``churn``, an alias or a served version)."""
        return self.models.named(tenant_id, name)

    async def score(
        self,
        tenant_id: str,
        body: BatchInput,
        render: Callable[[ScoredBatch], RenderedT],
        *,
        serving: ServingModel | None = None,
        with_drivers: bool = False,
        inline: bool = False,
    ) -> RenderedT:
        """Parse, score and render a batch in one worker thread (a large body never parses or
        serialises on the event loop); ``serving`` defaults to the tenant's champion.
        ``inline``: a body of a few rows, whose whole work costs less than a hop to a thread."""
        serving = serving or self.models.for_tenant(tenant_id)
        rules = await self.rules(tenant_id) if with_drivers else []
        if inline:
            return self._score_rendered(serving, body, with_drivers, rules, render)
        return await asyncio.to_thread(
            self._score_rendered, serving, body, with_drivers, rules, render
        )

    def _score_rendered(
        self,
        serving: ServingModel,
        body: BatchInput,
        with_drivers: bool,
        rules: list[dict[str, Any]],
        render: Callable[[ScoredBatch], RenderedT],
    ) -> RenderedT:
        return render(self._scored(serving, body, with_drivers, rules))

    def _scored(
        self,
        serving: ServingModel,
        body: BatchInput,
        with_drivers: bool,
        rules: list[dict[str, Any]],
    ) -> ScoredBatch:
        model = serving.model
        columns = body.columns(model.feature_names)
        if with_drivers:
            explained = _explain(model, columns, self.settings.drivers_top_k)
            probabilities = explained.probabilities
            drivers: list[list[DriverRow]] | None = explained.drivers
        else:
            probabilities = _predict(model, columns)
            drivers = None
        codes = risk_level_codes(
            probabilities, self.settings.low_risk_below, self.settings.high_risk_from
        )
        recommendations = (
            [recommend(row, rules) for row in drivers] if drivers is not None else None
        )
        return ScoredBatch(serving, probabilities, codes, drivers, recommendations)

    async def score_snapshots(
        self, session: AsyncSession, snapshots: Sequence[FeatureSnapshot]
    ) -> list[ChurnScoreComputedV1]:
        """Score a micro-batch, store every score and enqueue ``ChurnScoreComputedV1`` events.

        One parse and one model call (in a thread) per serving model; one query for the
        customers' previous probabilities; one bulk insert; one outbox write per request id.
        """
        if not snapshots:
            return []
        groups: dict[str, tuple[ServingModel, list[int]]] = {}
        for index, snapshot in enumerate(snapshots):
            serving = self.models.online_for_tenant(snapshot.tenant_id)
            groups.setdefault(serving.version, (serving, []))[1].append(index)
        probabilities: list[float] = [0.0] * len(snapshots)
        drivers: list[list[DriverRow]] = [[] for _ in snapshots]
        versions: list[str] = [""] * len(snapshots)
        for serving, indices in groups.values():
            columns = FeatureColumns.from_mappings(
                [snapshots[i].features for i in indices], serving.model.feature_names
            )
            explained = await asyncio.to_thread(
                _explain, serving.model, columns, self.settings.drivers_top_k
            )
            for position, i in enumerate(indices):
                probabilities[i] = float(explained.probabilities[position])
                drivers[i] = explained.drivers[position]
                versions[i] = serving.version

        scored_at = utcnow()
        events = await self._record(
            session,
            [
                _Score(
                    tenant_id=snapshot.tenant_id,
                    customer_id=snapshot.customer_id,
                    probability=probabilities[i],
                    drivers=drivers[i],
                    version=versions[i],
                    backfill=snapshot.backfill,
                    request_id=snapshot.request_id,
                )
                for i, snapshot in enumerate(snapshots)
            ],
            scored_at,
        )
        await self._shadow(session, snapshots, probabilities, versions, scored_at)
        return events

    async def score_attributes(
        self, session: AsyncSession, changes: Sequence[AttributeChange]
    ) -> list[ChurnScoreComputedV1]:
        """Score customers whose attributes changed with their tenant's champion when it reads
        imported attributes; store the scores and enqueue ``ChurnScoreComputedV1`` exactly as
        :meth:`score_snapshots` does. A tenant whose champion reads the online features (or who
        has none) is skipped: the event stream scores its customers. A customer changed twice
        in the batch is scored once, on the latest attributes; a row the model cannot read (a
        text value for a numeric feature) is left out. Missing attributes and unseen
        categories are scored as the batch endpoint scores them."""
        latest: dict[tuple[str, str], AttributeChange] = {}
        for change in changes:
            key = (change.tenant_id, change.customer_id)
            latest.pop(key, None)
            latest[key] = change
        groups: dict[str, tuple[ServingModel, list[AttributeChange]]] = {}
        for change in latest.values():
            serving = self.models.attribute_champion(change.tenant_id)
            if serving is not None:
                groups.setdefault(serving.version, (serving, []))[1].append(change)
        scores: list[_Score] = []
        for serving, group in groups.values():
            rows = [
                {k: _attribute_value(v) for k, v in change.attributes.items()} for change in group
            ]
            explained, readable = await asyncio.to_thread(
                _explain_readable, serving.model, rows, self.settings.drivers_top_k
            )
            if len(readable) < len(group):
                kept = set(readable)
                _log.warning(
                    "customer_attributes_unreadable",
                    model_version=serving.version,
                    customers=[c.customer_id for i, c in enumerate(group) if i not in kept][:20],
                )
            for position, i in enumerate(readable):
                change = group[i]
                scores.append(
                    _Score(
                        tenant_id=change.tenant_id,
                        customer_id=change.customer_id,
                        probability=float(explained.probabilities[position]),
                        drivers=explained.drivers[position],
                        version=serving.version,
                        request_id=change.request_id,
                    )
                )
        return await self._record(session, scores, utcnow())

    async def _record(
        self, session: AsyncSession, scores: Sequence[_Score], scored_at: datetime
    ) -> list[ChurnScoreComputedV1]:
        """Store the scores (one bulk insert) and enqueue their ``ChurnScoreComputedV1`` (one
        outbox write per request id), each with the customer's previous probability."""
        if not scores:
            return []
        repository = ScoreRepository(session)
        last = await repository.latest_probabilities([(s.tenant_id, s.customer_id) for s in scores])
        rows: list[dict[str, Any]] = []
        events: list[ChurnScoreComputedV1] = []
        envelopes: dict[str | None, list[Envelope]] = {}
        for score in scores:
            key = (score.tenant_id, score.customer_id)
            level = self._risk(score.probability)
            event = ChurnScoreComputedV1.model_validate(
                {
                    "customer_id": score.customer_id,
                    "churn_probability": score.probability,
                    "previous_probability": last.get(key),
                    "risk_level": level,
                    "model_version": score.version,
                    "scored_at": scored_at,
                    "drivers": _contract_drivers(score.drivers),
                    "backfill": score.backfill,
                }
            )
            last[key] = score.probability
            events.append(event)
            rows.append(
                {
                    "tenant_id": score.tenant_id,
                    "customer_id": score.customer_id,
                    "churn_probability": score.probability,
                    "risk_level": level,
                    "model_version": score.version,
                    "drivers": [d.model_dump(mode="json") for d in event.drivers],
                    "scored_at": scored_at,
                }
            )
            envelopes.setdefault(score.request_id, []).append(
                Envelope.wrap(
                    tenant_id=score.tenant_id,
                    producer=PRODUCER,
                    payload=event,
                    key=score.customer_id,
                    event_id=str(uuid.uuid4()),
                    occurred_at=scored_at,
                )
            )
        await repository.insert_many(rows)
        for request_id, batch in envelopes.items():
            await enqueue(session, outbox, ChurnScoreComputedV1.topic, batch, request_id=request_id)
        return events

    async def _shadow(
        self,
        session: AsyncSession,
        snapshots: Sequence[FeatureSnapshot],
        probabilities: Sequence[float],
        versions: Sequence[str],
        scored_at: datetime,
    ) -> None:
        """Score each tenant's online challenger next to its champion; store, never alert."""
        groups: dict[str, tuple[ServingModel, list[int]]] = {}
        for i, snapshot in enumerate(snapshots):
            challenger = self.models.shadow_for_tenant(snapshot.tenant_id, versions[i])
            if challenger is not None:
                groups.setdefault(challenger.version, (challenger, []))[1].append(i)
        rows: list[dict[str, Any]] = []
        for challenger, indices in groups.values():
            columns = FeatureColumns.from_mappings(
                [snapshots[i].features for i in indices], challenger.model.feature_names
            )
            shadow = await asyncio.to_thread(_predict, challenger.model, columns)
            for position, i in enumerate(indices):
                p = float(shadow[position])
                rows.append(
                    {
                        "tenant_id": snapshots[i].tenant_id,
                        "customer_id": snapshots[i].customer_id,
                        "champion_version": versions[i],
                        "challenger_version": challenger.version,
                        "champion_probability": probabilities[i],
                        "challenger_probability": p,
                        "champion_risk": self._risk(probabilities[i]),
                        "challenger_risk": self._risk(p),
                        "scored_at": scored_at,
                    }
                )
        await ShadowScoreRepository(session).insert_many(rows)
