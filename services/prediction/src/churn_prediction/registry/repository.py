"""SQL of the model registry: versions, aliases and their history. Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.models import (
    AliasChange,
    ModelAlias,
    ModelVersion,
    alias_history_table,
    execute_core,
    model_aliases_table,
    model_versions_table,
)

#: The tenant key of global aliases (a primary key column cannot be NULL).
GLOBAL_TENANT = ""


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
        await execute_core(
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
            await execute_core(
                self.session,
                sa.select(h).where(h.c.tenant_id == tenant_id).order_by(h.c.id),
            )
        ).all()
        return [dict(row._mapping) for row in rows]

    async def list_versions(self, tenant_id: str) -> list[dict[str, Any]]:
        """The global versions and ``tenant_id``'s own, newest first, without artifacts."""
        t = model_versions_table
        rows = (
            await execute_core(
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
            await execute_core(
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
