"""SQL of scoring: score history and shadow scores, written with Core bulk inserts (the hot
path). Never commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.models import execute_core, scores_table, shadow_scores_table


class ScoreRepository:
    """Score history."""

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
            await execute_core(
                self.session,
                sa.select(s.c.tenant_id, s.c.customer_id, s.c.churn_probability).join(
                    latest_ids, latest_ids.c.id == s.c.id
                ),
            )
        ).all()
        return {(row.tenant_id, row.customer_id): float(row.churn_probability) for row in rows}

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> int:
        if rows:
            await execute_core(self.session, sa.insert(scores_table), list(rows))
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
        return [dict(row._mapping) for row in (await execute_core(self.session, statement)).all()]


async def delete_scores_of(
    session: AsyncSession, tenant_id: str, customer_ids: Sequence[str]
) -> int:
    """Delete every score and shadow score of these customers; how many scores went."""
    deleted = 0
    for table in (scores_table, shadow_scores_table):
        result = await execute_core(
            session,
            sa.delete(table).where(
                table.c.tenant_id == tenant_id, table.c.customer_id.in_(list(customer_ids))
            ),
        )
        if table is scores_table:
            deleted = int(getattr(result, "rowcount", 0) or 0)
    return deleted


class ShadowScoreRepository:
    """Champion and challenger probabilities of the same snapshots (never published)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await execute_core(self.session, sa.insert(shadow_scores_table), list(rows))

    async def summary(self, tenant_id: str, champion: str, challenger: str) -> dict[str, Any]:
        s = shadow_scores_table
        same = sa.case((s.c.champion_risk == s.c.challenger_risk, 1), else_=0)
        row = (
            await execute_core(
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
