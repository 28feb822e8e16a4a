"""Request and response shapes of recommendations."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Recommendation(BaseModel):
    """An action the tenant's rule table gives for one of the score's drivers."""

    action: str
    message: str
    feature: str
    contribution: float


class RecommendationRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature: str = Field(min_length=1, max_length=200)
    direction: Literal["increases_risk", "decreases_risk"] = "increases_risk"
    action: str = Field(min_length=1, max_length=100)
    message: str = Field(default="", max_length=1000)


class RecommendationRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RecommendationRule] = Field(max_length=200)
