"""The model registry: versions (immutable) and the aliases that move between them; loading the
champions into memory, promotion, rollback, hot reload, shadow reports and evaluation.

Services take a session and never commit; the caller owns the transaction. Model work (training
the default, parsing artifacts, evaluating) runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.clients import TrainingSetClient
from churn_prediction.config import Settings
from churn_prediction.exceptions import (
    CustomersUnavailableError,
    CutoffNotUsableError,
    ModelNotEvaluableError,
    ModelSchemaMismatchError,
    ModelVersionNotFoundError,
    NothingToRollBackError,
    TrainingSetError,
    TrainingSetRefusedError,
)
from churn_prediction.models import PRODUCER, AliasChange, ModelVersion, outbox
from churn_prediction.registry.default_model import (
    DEFAULT_VERSION,
    default_model_card,
    online_feature_schema,
    train_default_model,
)
from churn_prediction.registry.loading import BOOSTER, PIPELINE, encode_artifact, load_version
from churn_prediction.registry.repository import ModelRegistryRepository
from churn_prediction.registry.schemas import (
    AliasRead,
    BaselineComparison,
    EvaluationCreate,
    EvaluationRead,
    ModelDetail,
    ModelList,
    ModelListItem,
    ShadowReport,
)
from churn_prediction.scoring.repository import ShadowScoreRepository
from churn_prediction.scoring.scorer import FeatureColumns
from churn_prediction.scoring.serving import CHALLENGER, CHAMPION, ServingModel, ServingModels
from churn_prediction.training.card import model_card
from churn_prediction.training.evaluation import (
    baseline_comparison,
    evaluate_probabilities,
    recency_baseline_auc,
)
from churn_prediction.training.model import TrainedModel
from churn_shared.contracts import EventTrainingSet, ModelPromotedV1
from churn_shared.db import utcnow
from churn_shared.kafka import Envelope, enqueue
from churn_shared.logging import get_logger

__all__ = ["ModelRegistryService"]

_log = get_logger(__name__)


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
                feature_schema=online_feature_schema(),
                model_card=default_model_card(metrics),
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
                    out.append(load_version(row, num_threads=num_threads))
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
        """Re-read one tenant's champion and challenger and swap them in (hot reload). Callers
        go through :func:`churn_prediction.registry.hot_reload.reload_tenant_models`, which
        holds the tenant's reload lock and gives this a transaction begun under it."""
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

    async def stale_champions(self, models: ServingModels, tenant_ids: Sequence[str]) -> list[str]:
        """Those of these tenants whose champion in the registry is not the one ``models``
        serves: a promotion or rollback whose ``ModelPromotedV1`` this replica has not consumed
        yet (one look-up per tenant)."""
        stale = []
        for tenant_id in dict.fromkeys(tenant_ids):
            served = models.by_tenant.get(tenant_id)
            target = await self.repository.alias_target(tenant_id, CHAMPION)
            if target != (served.version if served is not None else None):
                stale.append(tenant_id)
        return stale

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
            tenant_id=tenant_id,
            producer=PRODUCER,
            payload=event,
            key=tenant_id,
        )
        await enqueue(self.session, outbox, ModelPromotedV1.topic, [envelope])
        return previous

    async def promote(
        self,
        tenant_id: str,
        version: str,
        alias: str,
        *,
        actor: str | None,
        num_threads: int = 1,
    ) -> AliasRead:
        """Point ``alias`` at one of the tenant's versions after checking its schema. The caller
        reloads this replica's models once the move is committed; every other replica reloads
        on ``ModelPromotedV1``."""
        row = await self._visible(tenant_id, version)
        if row.tenant_id != tenant_id:
            raise ModelVersionNotFoundError(
                f"Model version {version!r} is global; only the tenant's own versions take "
                "aliases (roll back to fall back to the default)."
            )
        await asyncio.to_thread(load_version, row, num_threads=num_threads)
        previous = await self._move_alias(tenant_id, alias, version, action="promote", actor=actor)
        if alias == CHAMPION and await self.repository.alias_target(tenant_id, CHALLENGER) == (
            version
        ):
            await self._move_alias(tenant_id, CHALLENGER, None, action="promote", actor=actor)
        return AliasRead(alias=alias, version=version, previous_version=previous)

    async def rollback(
        self, tenant_id: str, *, actor: str | None, num_threads: int = 1
    ) -> AliasRead:
        """Move the champion back to the one it replaced (none: the global default); the
        caller reloads once it is committed, as after :meth:`promote`."""
        current = await self.repository.alias_target(tenant_id, CHAMPION)
        if current is None:
            raise NothingToRollBackError("The tenant has no champion of its own to roll back.")
        promotion = await self.repository.last_promotion(tenant_id, CHAMPION, current)
        target = promotion.previous_version if promotion is not None else None
        if target is not None:
            row = await self.repository.get_version(target)
            if row is not None:
                await asyncio.to_thread(load_version, row, num_threads=num_threads)
        await self._move_alias(tenant_id, CHAMPION, target, action="rollback", actor=actor)
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
        serving = await asyncio.to_thread(load_version, row, num_threads=num_threads)
        if not serving.online:
            raise ModelNotEvaluableError(
                f"Model {version} reads customer attributes, not the behavioural features of a "
                "point-in-time set."
            )
        try:
            data = await training_sets.event_training_set(
                body.cutoff.isoformat(), body.horizon_days, authorization=authorization
            )
        except TrainingSetRefusedError as exc:
            raise CutoffNotUsableError(str(exc), **exc.extra) from exc
        except TrainingSetError as exc:
            raise CustomersUnavailableError(str(exc)) from exc
        return await asyncio.to_thread(_evaluate_version, serving, data, body)


def _evaluate_version(
    serving: ServingModel, data: EventTrainingSet, body: EvaluationCreate
) -> EvaluationRead:
    """``serving`` on a point-in-time set (blocking: run it in a thread)."""
    names = list(data.feature_names)
    matrix = np.asarray(data.features, dtype=np.float64).reshape(-1, len(names))
    labels = np.asarray(data.labels, dtype=np.int64)
    if len(labels) == 0:
        raise ModelNotEvaluableError("The point-in-time set at this cutoff has no customers.")
    model = serving.model
    position = {name: j for j, name in enumerate(names)}
    columns = FeatureColumns(
        len(matrix),
        [matrix[:, position[n]].tolist() if n in position else None for n in model.feature_names],
    )
    probabilities = model.predict(model.parse(columns))
    report = evaluate_probabilities(labels, probabilities)
    recency = data.days_since_last_order
    baseline = recency_baseline_auc(recency, labels) if len(recency) == len(labels) else None
    comparison = baseline_comparison(
        labels, probabilities, pd.DataFrame(matrix, columns=names), float(body.horizon_days)
    )
    return EvaluationRead(
        version=serving.version,
        cutoff=body.cutoff,
        horizon_days=body.horizon_days,
        roc_auc=report["roc_auc"],
        pr_auc=report["pr_auc"],
        brier=report["brier"],
        n_customers=report["n"],
        positive_rate=report["positive_rate"],
        baselines={
            "recency": baseline,
            "bgnbd": comparison["bgnbd"]["roc_auc"] if comparison else None,
            "pareto_nbd": comparison["pareto_nbd"]["roc_auc"] if comparison else None,
        },
        comparison=BaselineComparison.model_validate(comparison) if comparison else None,
        ece=report["ece"],
        calibration_table=report["calibration_table"],
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
