"""All SQL of the prediction service. Repositories add, flush and query; they never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Result
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.models import (
    AliasChange,
    ModelAlias,
    ModelVersion,
    RecommendationRuleSet,
    TrainingJob,
    alias_history_table,
    model_aliases_table,
    model_versions_table,
    scores_table,
    shadow_scores_table,
)

GLOBAL_TENANT = ""


async def _core(session: AsyncSession, statement: sa.Executable, params: Any = None) -> Result[Any]:
    """Run a Core statement on the session's connection (inside the session's transaction)."""
    connection = await session.connection()
    return await connection.execute(statement, params)


class ModelRegistryRepository:
    """Model versions and the aliases (``champion`` …) that point at them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def aliased_version(self, tenant_id: str | None, alias: str) -> ModelVersion | None:
        """The version ``alias`` points to for ``tenant_id`` (``None`` = global), with artifact."""
        statement = (
            select(ModelVersion)
            .join(ModelAlias, col(ModelAlias.version) == col(ModelVersion.version))
            .where(
                ModelAlias.tenant_id == (tenant_id or GLOBAL_TENANT),
                ModelAlias.alias == alias,
            )
        )
        return (await self.session.exec(statement)).first()

    async def aliased_versions(self, alias: str) -> Sequence[ModelVersion]:
        """Every tenant's (and the global) version that ``alias`` points to, with artifacts."""
        statement = select(ModelVersion).join(
            ModelAlias,
            sa.and_(
                col(ModelAlias.version) == col(ModelVersion.version), col(ModelAlias.alias) == alias
            ),
        )
        return (await self.session.exec(statement)).all()

    async def add_version(self, version: ModelVersion) -> ModelVersion:
        self.session.add(version)
        await self.session.flush()
        return version

    async def set_alias(self, tenant_id: str | None, alias: str, version: str) -> None:
        key = (tenant_id or GLOBAL_TENANT, alias)
        existing = await self.session.get(ModelAlias, key)
        if existing is None:
            self.session.add(ModelAlias(tenant_id=key[0], alias=alias, version=version))
        else:
            existing.version = version
        await self.session.flush()

    async def get_version(self, version: str) -> ModelVersion | None:
        return await self.session.get(ModelVersion, version)

    async def alias_target(self, tenant_id: str | None, alias: str) -> str | None:
        row = await self.session.get(ModelAlias, (tenant_id or GLOBAL_TENANT, alias))
        return row.version if row is not None else None

    async def remove_alias(self, tenant_id: str, alias: str) -> None:
        a = model_aliases_table
        await _core(
            self.session, sa.delete(a).where(a.c.tenant_id == tenant_id, a.c.alias == alias)
        )

    async def record_alias_change(self, change: AliasChange) -> None:
        self.session.add(change)
        await self.session.flush()

    async def last_promotion(self, tenant_id: str, alias: str, version: str) -> AliasChange | None:
        """The latest move of ``alias`` onto ``version`` other than a rollback."""
        statement = (
            select(AliasChange)
            .where(
                AliasChange.tenant_id == tenant_id,
                AliasChange.alias == alias,
                AliasChange.version == version,
                AliasChange.action != "rollback",
            )
            .order_by(col(AliasChange.id).desc())
            .limit(1)
        )
        return (await self.session.exec(statement)).first()

    async def alias_history(self, tenant_id: str) -> list[dict[str, Any]]:
        h = alias_history_table
        rows = (
            await _core(
                self.session,
                sa.select(h).where(h.c.tenant_id == tenant_id).order_by(h.c.id),
            )
        ).all()
        return [dict(row._mapping) for row in rows]

    async def list_versions(self, tenant_id: str) -> list[dict[str, Any]]:
        """The global versions and ``tenant_id``'s own, newest first, without artifacts."""
        t = model_versions_table
        rows = (
            await _core(
                self.session,
                sa.select(
                    t.c.version,
                    t.c.tenant_id,
                    t.c.features,
                    t.c.metrics,
                    t.c.created_at,
                    t.c.kind,
                    t.c.training_source,
                )
                .where(sa.or_(t.c.tenant_id.is_(None), t.c.tenant_id == tenant_id))
                .order_by(t.c.created_at.desc(), t.c.version.desc()),
            )
        ).all()
        return [dict(row._mapping) for row in rows]

    async def aliases_by_version(self, tenant_id: str) -> dict[str, list[str]]:
        """Alias names per version, for the global aliases and ``tenant_id``'s own."""
        a = model_aliases_table
        rows = (
            await _core(
                self.session,
                sa.select(a.c.version, a.c.alias, a.c.tenant_id)
                .where(a.c.tenant_id.in_([GLOBAL_TENANT, tenant_id]))
                .order_by(a.c.alias),
            )
        ).all()
        result: dict[str, list[str]] = {}
        for row in rows:
            result.setdefault(row.version, []).append(row.alias)
        return result


class ScoreRepository:
    """Score history; written with Core bulk inserts (the hot path)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def latest_probabilities(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], float]:
        """Each (tenant_id, customer_id)'s most recent churn probability, in one query."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return {}
        s = scores_table
        latest_ids = (
            sa.select(sa.func.max(s.c.id).label("id"))
            .where(sa.tuple_(s.c.tenant_id, s.c.customer_id).in_(unique))
            .group_by(s.c.tenant_id, s.c.customer_id)
            .subquery()
        )
        rows = (
            await _core(
                self.session,
                sa.select(s.c.tenant_id, s.c.customer_id, s.c.churn_probability).join(
                    latest_ids, latest_ids.c.id == s.c.id
                ),
            )
        ).all()
        return {(row.tenant_id, row.customer_id): float(row.churn_probability) for row in rows}

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> int:
        if rows:
            await _core(self.session, sa.insert(scores_table), list(rows))
        return len(rows)

    async def history(
        self, tenant_id: str, customer_id: str, *, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """A customer's scores, oldest first."""
        s = scores_table
        statement = (
            sa.select(s)
            .where(s.c.tenant_id == tenant_id, s.c.customer_id == customer_id)
            .order_by(s.c.scored_at, s.c.id)
        )
        if since is not None:
            statement = statement.where(s.c.scored_at >= since)
        return [dict(row._mapping) for row in (await _core(self.session, statement)).all()]


class TrainingJobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, job: TrainingJob) -> TrainingJob:
        self.session.add(job)
        await self.session.flush()
        return job

    async def get(self, tenant_id: str, job_id: str) -> TrainingJob | None:
        job = await self.session.get(TrainingJob, job_id)
        return job if job is not None and job.tenant_id == tenant_id else None


class ShadowScoreRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await _core(self.session, sa.insert(shadow_scores_table), list(rows))

    async def summary(self, tenant_id: str, champion: str, challenger: str) -> dict[str, Any]:
        s = shadow_scores_table
        same = sa.case((s.c.champion_risk == s.c.challenger_risk, 1), else_=0)
        row = (
            await _core(
                self.session,
                sa.select(
                    sa.func.count().label("n"),
                    sa.func.avg(same).label("agreement"),
                    sa.func.avg(
                        sa.func.abs(s.c.champion_probability - s.c.challenger_probability)
                    ).label("mean_abs_diff"),
                ).where(
                    s.c.tenant_id == tenant_id,
                    s.c.champion_version == champion,
                    s.c.challenger_version == challenger,
                ),
            )
        ).one()
        return dict(row._mapping)


class RecommendationRuleRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, tenant_id: str) -> list[dict[str, Any]] | None:
        row = await self.session.get(RecommendationRuleSet, tenant_id)
        return list(row.rules) if row is not None else None

    async def put(self, tenant_id: str, rules: list[dict[str, Any]], updated_at: datetime) -> None:
        row = await self.session.get(RecommendationRuleSet, tenant_id)
        if row is None:
            self.session.add(
                RecommendationRuleSet(tenant_id=tenant_id, rules=rules, updated_at=updated_at)
            )
        else:
            row.rules = rules
            row.updated_at = updated_at
        await self.session.flush()
