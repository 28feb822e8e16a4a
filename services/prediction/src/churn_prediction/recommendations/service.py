"""A tenant's recommendation rules: read (the defaults until it stores its own) and replace."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from churn_prediction.recommendations.repository import RecommendationRuleRepository
from churn_prediction.recommendations.rules import default_rules
from churn_prediction.recommendations.schemas import RecommendationRules
from churn_shared.db import utcnow


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
