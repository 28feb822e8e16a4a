"""Business logic of the prediction service: the serving models, scoring and the model registry.

Services take a session when they need one and never commit; the caller owns the transaction.
Model work (training, prediction, explanations) runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.clients import CustomerFeaturesClient, TrainingSetClient
from churn_prediction.config import Settings
from churn_prediction.exceptions import (
    BatchTooLargeError,
    CustomersUnavailableError,
    InvalidPredictionInputError,
    MalformedBodyError,
    ModelNotEvaluableError,
    ModelSchemaMismatchError,
    ModelVersionNotFoundError,
    NothingToRollBackError,
    TrainingJobNotFoundError,
    TrainingSetError,
)
from churn_prediction.models import AliasChange, ModelVersion, TrainingJob, outbox
from churn_prediction.recommendations.rules import default_rules, recommend
from churn_prediction.registry.repository import (
    ModelRegistryRepository,
    RecommendationRuleRepository,
    ScoreRepository,
    ShadowScoreRepository,
    TrainingJobRepository,
)
from churn_prediction.scoring.schemas import (
    AliasRead,
    EvaluationCreate,
    EvaluationRead,
    ModelDetail,
    ModelList,
    ModelListItem,
    ModelRead,
    PredictionCreate,
    PredictionRead,
    RecommendationRules,
    ShadowReport,
    TrainingCreate,
    TrainingJobRead,
)
from churn_prediction.scoring.scorer import ChurnModel, FloatArray, TrainingReport, risk_level
from churn_prediction.scoring.serving import (
    BOOSTER,
    CHALLENGER,
    CHAMPION,
    PIPELINE,
    PipelineScorer,
    ServingModel,
    ServingModels,
    encode_artifact,
)
from churn_prediction.training.evaluation import recency_baseline_auc
from churn_prediction.training.procedure import TrainedModel, calibration_table, model_card
from churn_prediction.training.simulation import simulate_customers
from churn_shared.contracts import (
    FEATURE_NAMES,
    ChurnScoreComputedV1,
    Driver,
    ModelPromotedV1,
    ModelTopics,
    Topics,
)
from churn_shared.db import utcnow
from churn_shared.kafka import Envelope, enqueue
from churn_shared.logging import get_logger

_log = get_logger(__name__)

__all__ = ["FeatureSnapshot", "PredictionService", "ServingModel", "ServingModels"]

DEFAULT_VERSION = "default-1"
PRODUCER = "churn-prediction"
_NUMERIC_TYPES = frozenset({int, float, type(None)})
_ATTRIBUTE_TYPES = frozenset({int, float, str, type(None)})


# -- the registry -----------------------------------------------------------------------------


def train_default_model(settings: Settings) -> tuple[ChurnModel, TrainingReport]:
    """Train the global default on simulated history (blocking: call it in a thread)."""
    history = simulate_customers(settings.default_model_customers, seed=settings.default_model_seed)
    return ChurnModel.train_with_holdout(
        history.features,
        history.labels,
        seed=settings.default_model_seed,
        num_trees=settings.default_model_trees,
        num_threads=settings.model_num_threads,
    )


def _default_card(metrics: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"# {DEFAULT_VERSION}: the global default churn model",
            "",
            "* Kind: LightGBM booster over the behavioural features "
            f"({', '.join(f'`{n}`' for n in FEATURE_NAMES)}).",
            f"* Trained on {metrics.get('n_train')} simulated customers (seed "
            f"{metrics.get('seed')}), ROC-AUC {metrics.get('roc_auc', float('nan')):.3f} on "
            f"{metrics.get('n_holdout')} held-out simulated customers.",
            "* Serves every tenant that has no champion of its own. Simulated behaviour is not "
            "your customers' behaviour: train a tenant model on your own history "
            "(`POST /v1/models/train`) and promote it once it beats this one.",
            "",
        ]
    )


def _online_schema() -> dict[str, Any]:
    return {"features": [{"name": n, "kind": "numeric", "dtype": "float64"} for n in FEATURE_NAMES]}


def _version_id(source: str) -> str:
    return f"{source}-{utcnow():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


class ModelRegistryService:
    """Registering, aliasing and loading model versions. Versions are immutable; aliases move."""

    def __init__(self, session: AsyncSession) -> None:
        self.repository = ModelRegistryRepository(session)
        self.session = session

    async def ensure_default_model(self, settings: Settings) -> bool:
        """Train and register ``default-1`` as the global champion unless one exists."""
        if await self.repository.aliased_version(None, CHAMPION) is not None:
            return False
        model, report = await asyncio.to_thread(train_default_model, settings)
        metrics: dict[str, Any] = {
            **report.as_metrics(),
            "training_source": "simulation",
            "seed": settings.default_model_seed,
            "num_trees": settings.default_model_trees,
        }
        await self.repository.add_version(
            ModelVersion(
                version=DEFAULT_VERSION,
                tenant_id=None,
                features=list(model.feature_names),
                metrics=metrics,
                artifact=model.to_string(),
                created_at=utcnow(),
                kind=BOOSTER,
                feature_schema=_online_schema(),
                model_card=_default_card(metrics),
                training_source={"source": "simulation", "seed": settings.default_model_seed},
            )
        )
        await self.repository.set_alias(None, CHAMPION, DEFAULT_VERSION)
        _log.info("default_model_trained", version=DEFAULT_VERSION, **report.as_metrics())
        return True

    async def _load(
        self, rows: Sequence[ModelVersion], num_threads: int
    ) -> list[ServingModel | None]:
        def parse() -> list[ServingModel | None]:
            out: list[ServingModel | None] = []
            for row in rows:
                try:
                    out.append(ServingModel.from_row(row, num_threads=num_threads))
                except ModelSchemaMismatchError as exc:
                    _log.error("model_refused", version=row.version, error=exc.detail)
                    out.append(None)
            return out

        return await asyncio.to_thread(parse)

    async def load_champions(self, *, num_threads: int = 1) -> ServingModels:
        """Every champion and challenger (global and per tenant), parsed and schema-checked;
        a version that fails the check is logged and not served."""
        models = ServingModels()
        for alias in (CHAMPION, CHALLENGER):
            rows = await self.repository.aliased_versions(alias)
            for serving in await self._load(rows, num_threads):
                if serving is not None:
                    models.put(serving, alias)
        return models

    async def reload_tenant(self, models: ServingModels, tenant_id: str, num_threads: int) -> None:
        """Re-read one tenant's champion and challenger and swap them in (hot reload)."""
        loaded: dict[str, ServingModel | None] = {}
        for alias in (CHAMPION, CHALLENGER):
            row = await self.repository.aliased_version(tenant_id, alias)
            loaded[alias] = (await self._load([row], num_threads))[0] if row else None
        models.replace_tenant(tenant_id, loaded[CHAMPION], loaded[CHALLENGER])
        _log.info(
            "tenant_models_reloaded",
            tenant_id=tenant_id,
            champion=getattr(loaded[CHAMPION], "version", None),
            challenger=getattr(loaded[CHALLENGER], "version", None),
        )

    async def list_models(self, tenant_id: str) -> ModelList:
        versions = await self.repository.list_versions(tenant_id)
        aliases = await self.repository.aliases_by_version(tenant_id)
        return ModelList(
            items=[
                ModelListItem(
                    version=row["version"],
                    tenant_id=row["tenant_id"],
                    aliases=aliases.get(row["version"], []),
                    features=list(row["features"]),
                    metrics=dict(row["metrics"]),
                    created_at=row["created_at"],
                    kind=row["kind"] or BOOSTER,
                    training_source=row["training_source"],
                )
                for row in versions
            ]
        )

    async def _visible(self, tenant_id: str, version: str) -> ModelVersion:
        row = await self.repository.get_version(version)
        if row is None or row.tenant_id not in (None, tenant_id):
            raise ModelVersionNotFoundError(f"Model version {version!r} was not found.")
        return row

    async def get_model(self, tenant_id: str, version: str) -> ModelDetail:
        row = await self._visible(tenant_id, version)
        aliases = await self.repository.aliases_by_version(tenant_id)
        source = row.training_source
        online = (row.kind or BOOSTER) == BOOSTER or (
            source is not None and source.get("source") == "events"
        )
        return ModelDetail(
            version=row.version,
            tenant_id=row.tenant_id,
            aliases=aliases.get(row.version, []),
            features=list(row.features),
            metrics=dict(row.metrics),
            created_at=row.created_at,
            kind=row.kind or BOOSTER,
            training_source=source,
            feature_schema=row.feature_schema,
            model_card=row.model_card,
            online=online,
        )

    async def model_card(self, tenant_id: str, version: str) -> str:
        row = await self._visible(tenant_id, version)
        return row.model_card or f"# {row.version}\n\nNo model card was recorded.\n"

    async def register(
        self,
        tenant_id: str,
        trained: TrainedModel,
        *,
        source: dict[str, Any],
        job_id: str | None = None,
    ) -> str:
        """Store a freshly trained pipeline model and point the tenant's challenger at it."""
        version = _version_id(str(source.get("source", "model")))
        title = f"Churn model {version}"
        card = await asyncio.to_thread(model_card, trained, title)
        artifact = await asyncio.to_thread(encode_artifact, trained)
        metrics = {**trained.metrics, "training_source": source}
        await self.repository.add_version(
            ModelVersion(
                version=version,
                tenant_id=tenant_id,
                features=list(trained.feature_names),
                metrics=_json_safe(metrics),
                artifact=artifact,
                created_at=utcnow(),
                kind=PIPELINE,
                feature_schema=trained.feature_schema,
                model_card=card,
                training_source={**source, "job_id": job_id},
            )
        )
        await self._move_alias(tenant_id, CHALLENGER, version, action="trained", actor=job_id)
        return version

    async def _move_alias(
        self, tenant_id: str, alias: str, version: str | None, *, action: str, actor: str | None
    ) -> str | None:
        previous = await self.repository.alias_target(tenant_id, alias)
        if version is None:
            await self.repository.remove_alias(tenant_id, alias)
        else:
            await self.repository.set_alias(tenant_id, alias, version)
        await self.repository.record_alias_change(
            AliasChange(
                tenant_id=tenant_id,
                alias=alias,
                version=version,
                previous_version=previous,
                action=action,
                actor=actor,
                changed_at=utcnow(),
            )
        )
        event = ModelPromotedV1(
            tenant_id=tenant_id,
            alias=alias,
            version=version,
            previous_version=previous,
            reason=action,
            promoted_at=utcnow(),
        )
        envelope = Envelope.wrap(
            event_type="ModelPromotedV1",
            tenant_id=tenant_id,
            producer=PRODUCER,
            payload=event,
            key=tenant_id,
        )
        await enqueue(self.session, outbox, ModelTopics.MODEL_EVENTS, [envelope])
        return previous

    async def promote(
        self,
        tenant_id: str,
        version: str,
        alias: str,
        *,
        actor: str | None,
        models: ServingModels,
        num_threads: int = 1,
    ) -> AliasRead:
        """Point ``alias`` at one of the tenant's versions after checking its schema; this
        replica swaps at once, every other one on ``ModelPromotedV1``."""
        row = await self._visible(tenant_id, version)
        if row.tenant_id != tenant_id:
            raise ModelVersionNotFoundError(
                f"Model version {version!r} is global; only the tenant's own versions take "
                "aliases (roll back to fall back to the default)."
            )
        await asyncio.to_thread(ServingModel.from_row, row, num_threads=num_threads)
        previous = await self._move_alias(tenant_id, alias, version, action="promote", actor=actor)
        if alias == CHAMPION and await self.repository.alias_target(tenant_id, CHALLENGER) == (
            version
        ):
            await self._move_alias(tenant_id, CHALLENGER, None, action="promote", actor=actor)
        await self.reload_tenant(models, tenant_id, num_threads)
        return AliasRead(alias=alias, version=version, previous_version=previous)

    async def rollback(
        self, tenant_id: str, *, actor: str | None, models: ServingModels, num_threads: int = 1
    ) -> AliasRead:
        """Move the champion back to the one it replaced (none: the global default)."""
        current = await self.repository.alias_target(tenant_id, CHAMPION)
        if current is None:
            raise NothingToRollBackError("The tenant has no champion of its own to roll back.")
        promotion = await self.repository.last_promotion(tenant_id, CHAMPION, current)
        target = promotion.previous_version if promotion is not None else None
        if target is not None:
            row = await self.repository.get_version(target)
            if row is not None:
                await asyncio.to_thread(ServingModel.from_row, row, num_threads=num_threads)
        await self._move_alias(tenant_id, CHAMPION, target, action="rollback", actor=actor)
        await self.reload_tenant(models, tenant_id, num_threads)
        return AliasRead(alias=CHAMPION, version=target, previous_version=current)

    async def shadow_report(self, tenant_id: str, models: ServingModels) -> ShadowReport:
        champion = models.online_for_tenant(tenant_id).version
        challenger = models.challengers.get(tenant_id)
        if challenger is None:
            return ShadowReport(
                champion=champion, challenger=None, n=0, agreement=None, mean_abs_diff=None
            )
        row = await ShadowScoreRepository(self.session).summary(
            tenant_id, champion, challenger.version
        )
        n = int(row["n"] or 0)
        return ShadowReport(
            champion=champion,
            challenger=challenger.version,
            n=n,
            agreement=float(row["agreement"]) if n else None,
            mean_abs_diff=float(row["mean_abs_diff"]) if n else None,
        )

    async def evaluate(
        self,
        tenant_id: str,
        version: str,
        body: EvaluationCreate,
        *,
        training_sets: TrainingSetClient,
        authorization: str | None,
        num_threads: int = 1,
    ) -> EvaluationRead:
        """Score a point-in-time set at ``cutoff`` with ``version``; compare with recency."""
        row = await self._visible(tenant_id, version)
        serving = await asyncio.to_thread(ServingModel.from_row, row, num_threads=num_threads)
        if not serving.online:
            raise ModelNotEvaluableError(
                f"Model {version} reads customer attributes, not the behavioural features of a "
                "point-in-time set."
            )
        try:
            data = await training_sets.events(
                body.cutoff.isoformat(), body.horizon_days, authorization=authorization
            )
        except TrainingSetError as exc:
            raise CustomersUnavailableError(str(exc)) from exc
        return await asyncio.to_thread(_evaluate_set, serving, data, body)


def _evaluate_set(
    serving: ServingModel, data: dict[str, Any], body: EvaluationCreate
) -> EvaluationRead:
    names = list(data["feature_names"])
    matrix = np.asarray(data["features"], dtype=np.float64).reshape(-1, len(names))
    frame = pd.DataFrame(matrix, columns=names)
    for name in serving.model.feature_names:
        if name not in frame.columns:
            frame[name] = np.nan
    ordered = frame[list(serving.model.feature_names)].to_numpy(dtype=np.float64)
    labels = np.asarray(data["labels"], dtype=np.int64)
    if len(labels) == 0:
        raise ModelNotEvaluableError("The point-in-time set at this cutoff has no customers.")
    p = serving.model.predict_proba(ordered)
    both = len(np.unique(labels)) == 2
    recency = data.get("days_since_last_order")
    baseline = (
        recency_baseline_auc(recency, labels)
        if isinstance(recency, list) and len(recency) == len(labels)
        else None
    )
    return EvaluationRead(
        version=serving.version,
        cutoff=body.cutoff,
        horizon_days=body.horizon_days,
        roc_auc=float(roc_auc_score(labels, p)) if both else None,
        pr_auc=float(average_precision_score(labels, p)) if both else None,
        brier=float(brier_score_loss(labels, p)),
        n_customers=len(labels),
        positive_rate=float(labels.mean()),
        baselines={"recency": baseline},
        calibration_table=calibration_table(labels, p),
    )


def _json_safe(value: Any) -> Any:
    """NaN/inf → None, numpy scalars → Python (JSON columns refuse NaN on MySQL)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RecommendationRuleService:
    """A tenant's driver → action rules (the defaults until it stores its own)."""

    def __init__(
        self,
        session: AsyncSession,
        cache: dict[str, tuple[float, list[dict[str, Any]]]] | None = None,
    ) -> None:
        self.repository = RecommendationRuleRepository(session)
        self.cache = cache

    async def rules(self, tenant_id: str) -> list[dict[str, Any]]:
        stored = await self.repository.get(tenant_id)
        return default_rules() if stored is None else stored

    async def get(self, tenant_id: str) -> RecommendationRules:
        return RecommendationRules.model_validate({"rules": await self.rules(tenant_id)})

    async def put(self, tenant_id: str, body: RecommendationRules) -> RecommendationRules:
        rules = [rule.model_dump() for rule in body.rules]
        await self.repository.put(tenant_id, rules, utcnow())
        if self.cache is not None:
            self.cache.pop(tenant_id, None)
        return RecommendationRules.model_validate({"rules": rules})


class TrainingJobQueries:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = TrainingJobRepository(session)

    async def create(self, tenant_id: str, body: TrainingCreate) -> TrainingJob:
        now = utcnow()
        return await self.repository.add(
            TrainingJob(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                status="queued",
                progress=0,
                stage="queued",
                request=body.model_dump(mode="json", exclude_none=True),
                created_at=now,
                updated_at=now,
            )
        )

    async def get(self, tenant_id: str, job_id: str) -> TrainingJobRead:
        job = await self.repository.get(tenant_id, job_id)
        if job is None:
            raise TrainingJobNotFoundError(f"Training job {job_id!r} was not found.")
        return job_read(job)


def job_read(job: TrainingJob) -> TrainingJobRead:
    return TrainingJobRead.model_validate(
        {
            "job_id": job.id,
            "status": job.status,
            "progress": job.progress,
            "stage": job.stage,
            "model_version": job.model_version,
            "error": job.error,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
        }
    )


# -- batch bodies: validate the shape, not every cell -------------------------------------------


def _check_numeric(name: str, column: list[Any]) -> None:
    if not set(map(type, column)) <= _NUMERIC_TYPES:
        raise InvalidPredictionInputError(f"Feature {name!r} has a value that is not a number.")


def batch_matrix(raw: bytes, feature_names: Sequence[str], max_rows: int) -> FloatArray:
    """Parse a ``{"rows": [...]}`` or ``{"columns": {...}}`` body into an ``n x F`` matrix."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBodyError(f"The request body is not valid JSON: {exc}") from exc
    if type(body) is not dict:
        raise InvalidPredictionInputError("The body must be an object with rows or columns.")
    if set(body) - {"rows", "columns"}:
        extra = ", ".join(sorted(set(body) - {"rows", "columns"}))
        raise InvalidPredictionInputError(f"Unknown fields in the body: {extra}.")
    has_rows, has_columns = "rows" in body, "columns" in body
    if has_rows == has_columns:
        raise InvalidPredictionInputError("Give exactly one of rows or columns.")
    known = frozenset(feature_names)
    columns: list[list[Any] | None]
    if has_rows:
        rows = body["rows"]
        if type(rows) is not list:
            raise InvalidPredictionInputError("rows must be an array of objects.")
        n = len(rows)
        if n > max_rows:
            raise BatchTooLargeError(f"At most {max_rows} rows per batch; got {n}.")
        seen: set[str] = set()
        for row in rows:
            if type(row) is not dict:
                raise InvalidPredictionInputError("Every row must be an object.")
            seen.update(row)
        unknown = seen - known
        if unknown:
            raise InvalidPredictionInputError(f"Unknown features: {', '.join(sorted(unknown))}.")
        columns = [
            [row.get(name) for row in rows] if name in seen else None for name in feature_names
        ]
    else:
        given = body["columns"]
        if type(given) is not dict or not given:
            raise InvalidPredictionInputError("columns must be an object of feature arrays.")
        unknown = set(given) - known
        if unknown:
            raise InvalidPredictionInputError(f"Unknown features: {', '.join(sorted(unknown))}.")
        lengths = set()
        for name, column in given.items():
            if type(column) is not list:
                raise InvalidPredictionInputError(f"Column {name!r} must be an array.")
            lengths.add(len(column))
        n = max(lengths)
        if n > max_rows:
            raise BatchTooLargeError(f"At most {max_rows} rows per batch; got {n}.")
        if len(lengths) > 1:
            raise InvalidPredictionInputError("All columns must have the same length.")
        columns = [given.get(name) for name in feature_names]
    if n == 0:
        raise InvalidPredictionInputError("The batch has no rows.")
    for name, column in zip(feature_names, columns, strict=True):
        if column is not None:
            _check_numeric(name, column)
    matrix = np.full((n, len(feature_names)), np.nan, dtype=np.float64)
    for i, column in enumerate(columns):
        if column is not None:
            matrix[:, i] = np.asarray(column, dtype=np.float64)
    return matrix


# -- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    """One customer's feature profile to score (from ``customer.features.v1``)."""

    tenant_id: str
    customer_id: str
    features: dict[str, float | None]
    backfill: bool = False
    request_id: str | None = None


RulesLoader = Callable[[str], Awaitable[list[dict[str, Any]]]]


async def _no_rules(_tenant_id: str) -> list[dict[str, Any]]:
    return default_rules()


def batch_frame(raw: bytes, feature_names: Sequence[str], max_rows: int) -> pd.DataFrame:
    """Parse a batch body for a model with text (categorical) attributes into a frame."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedBodyError(f"The request body is not valid JSON: {exc}") from exc
    if type(body) is not dict or len(set(body) & {"rows", "columns"}) != 1 or len(body) != 1:
        raise InvalidPredictionInputError("Give exactly one of rows or columns.")
    known = set(feature_names)
    if "rows" in body:
        rows = body["rows"]
        if type(rows) is not list or not all(type(r) is dict for r in rows):
            raise InvalidPredictionInputError("rows must be an array of objects.")
        names: set[str] = set()
        for row in rows:
            names.update(row)
        data = {n: [row.get(n) for row in rows] for n in feature_names}
        n = len(rows)
    else:
        columns = body["columns"]
        if type(columns) is not dict or not columns:
            raise InvalidPredictionInputError("columns must be an object of arrays.")
        names = set(columns)
        if not all(type(c) is list for c in columns.values()):
            raise InvalidPredictionInputError("Every column must be an array.")
        lengths = {len(c) for c in columns.values()}
        if len(lengths) > 1:
            raise InvalidPredictionInputError("All columns must have the same length.")
        n = lengths.pop()
        data = {name: columns.get(name, [None] * n) for name in feature_names}
    if n > max_rows:
        raise BatchTooLargeError(f"At most {max_rows} rows per batch; got {n}.")
    if n == 0:
        raise InvalidPredictionInputError("The batch has no rows.")
    unknown = names - known
    if unknown:
        raise InvalidPredictionInputError(f"Unknown features: {', '.join(sorted(unknown))}.")
    for name, column in data.items():
        if any(type(v) not in _ATTRIBUTE_TYPES for v in column):
            raise InvalidPredictionInputError(f"Column {name!r} holds a value of another type.")
    return pd.DataFrame(data, columns=list(feature_names))


class PredictionService:
    """Scores rows with the model serving the caller's tenant.

    HTTP scoring uses the tenant's champion whatever it reads (behavioural features or imported
    attributes); scoring by ``customer_id`` and the online stream use the tenant's online model
    (its champion when that reads the behavioural features, else the global default).
    """

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
        top_k = self.settings.drivers_top_k
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
        drivers: list[dict[str, Any]]
        if isinstance(model, PipelineScorer) and not model.numeric_only:
            frame = pd.DataFrame([{n: features.get(n) for n in model.feature_names}])
            probs, explained = await asyncio.to_thread(model.predict_frame, frame, top_k)
            drivers = explained[0] if explained else []
        else:
            texts = sorted(n for n, v in features.items() if isinstance(v, str))
            if texts:
                raise InvalidPredictionInputError(
                    f"Features must be numbers or null: {', '.join(texts)}."
                )
            matrix = model.matrix_from_mappings([features])
            probs, found = await asyncio.to_thread(model.predict_with_drivers, matrix, top_k)
            drivers = [d.model_dump() for d in found[0]]
        probability = float(probs[0])
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

    async def predict_batch(
        self, tenant_id: str, raw_body: bytes, *, with_drivers: bool = False
    ) -> dict[str, Any]:
        """Score a raw batch body; predictions in input order (a plain dict, for orjson)."""
        serving = self.models.for_tenant(tenant_id)
        rules = await self.rules(tenant_id) if with_drivers else []
        return await asyncio.to_thread(self._score_batch, serving, raw_body, with_drivers, rules)

    def _score_batch(
        self,
        serving: ServingModel,
        raw_body: bytes,
        with_drivers: bool,
        rules: list[dict[str, Any]],
    ) -> dict[str, Any]:
        model = serving.model
        top_k = self.settings.drivers_top_k
        explained: list[list[dict[str, Any]]] | None = None
        if isinstance(model, PipelineScorer) and not model.numeric_only:
            frame = batch_frame(raw_body, model.feature_names, self.settings.max_batch_rows)
            probabilities, explained = model.predict_frame(frame, top_k if with_drivers else None)
        else:
            matrix = batch_matrix(raw_body, model.feature_names, self.settings.max_batch_rows)
            probabilities = model.predict_proba(matrix)
            if with_drivers:
                explained = [[d.model_dump() for d in row] for row in model.explain(matrix, top_k)]
        levels = np.where(
            probabilities >= self.settings.high_risk_from,
            "high",
            np.where(probabilities >= self.settings.low_risk_below, "medium", "low"),
        ).tolist()
        predictions: list[dict[str, Any]] = [
            {"churn_probability": p, "risk_level": level}
            for p, level in zip(probabilities.tolist(), levels, strict=True)
        ]
        if explained is not None:
            for item, drivers in zip(predictions, explained, strict=True):
                item["drivers"] = drivers
                item["recommendations"] = recommend(drivers, rules)
        return {"model_version": serving.version, "predictions": predictions}

    async def score_snapshots(
        self, session: AsyncSession, snapshots: Sequence[FeatureSnapshot]
    ) -> list[ChurnScoreComputedV1]:
        """Score a micro-batch, store every score and enqueue ``ChurnScoreComputedV1`` events.

        One matrix (and one model call, in a thread) per serving model; one query for the
        customers' previous probabilities; one bulk insert; one outbox write per request id.
        """
        if not snapshots:
            return []
        groups: dict[str, tuple[ServingModel, list[int]]] = {}
        for index, snapshot in enumerate(snapshots):
            serving = self.models.online_for_tenant(snapshot.tenant_id)
            groups.setdefault(serving.version, (serving, []))[1].append(index)
        probabilities: list[float] = [0.0] * len(snapshots)
        drivers: list[list[Driver]] = [[] for _ in snapshots]
        versions: list[str] = [""] * len(snapshots)
        for serving, indices in groups.values():
            matrix = serving.model.matrix_from_mappings([snapshots[i].features for i in indices])
            probs, explained = await asyncio.to_thread(
                serving.model.predict_with_drivers, matrix, self.settings.drivers_top_k
            )
            for position, i in enumerate(indices):
                probabilities[i] = float(probs[position])
                drivers[i] = explained[position]
                versions[i] = serving.version

        scores = ScoreRepository(session)
        last = await scores.latest_probabilities([(s.tenant_id, s.customer_id) for s in snapshots])
        scored_at = utcnow()
        rows: list[dict[str, Any]] = []
        events: list[ChurnScoreComputedV1] = []
        envelopes: dict[str | None, list[Envelope]] = {}
        for i, snapshot in enumerate(snapshots):
            key = (snapshot.tenant_id, snapshot.customer_id)
            probability = probabilities[i]
            level = self._risk(probability)
            event = ChurnScoreComputedV1.model_validate(
                {
                    "customer_id": snapshot.customer_id,
                    "churn_probability": probability,
                    "previous_probability": last.get(key),
                    "risk_level": level,
                    "model_version": versions[i],
                    "scored_at": scored_at,
                    "drivers": drivers[i],
                    "backfill": snapshot.backfill,
                }
            )
            last[key] = probability
            events.append(event)
            rows.append(
                {
                    "tenant_id": snapshot.tenant_id,
                    "customer_id": snapshot.customer_id,
                    "churn_probability": probability,
                    "risk_level": level,
                    "model_version": versions[i],
                    "drivers": [d.model_dump(mode="json") for d in drivers[i]],
                    "scored_at": scored_at,
                }
            )
            envelopes.setdefault(snapshot.request_id, []).append(
                Envelope.wrap(
                    event_type="ChurnScoreComputedV1",
                    tenant_id=snapshot.tenant_id,
                    producer=PRODUCER,
                    payload=event,
                    key=snapshot.customer_id,
                    event_id=str(uuid.uuid4()),
                    occurred_at=scored_at,
                )
            )
        await scores.insert_many(rows)
        await self._shadow(session, snapshots, probabilities, versions, scored_at)
        for request_id, batch in envelopes.items():
            await enqueue(session, outbox, Topics.CHURN_SCORES, batch, request_id=request_id)
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
            matrix = challenger.model.matrix_from_mappings([snapshots[i].features for i in indices])
            shadow = await asyncio.to_thread(challenger.model.predict_proba, matrix)
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
