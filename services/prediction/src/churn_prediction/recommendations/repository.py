"""SQL of recommendation rules: one rule set per tenant. Never commits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.models import RecommendationRuleSet


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
