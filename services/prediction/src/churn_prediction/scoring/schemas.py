"""Request and response shapes of scoring."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from churn_prediction.recommendations.schemas import Recommendation

RiskLevel = Literal["low", "medium", "high"]
#: A feature value: a JSON number (strings and booleans are refused) or null for unknown.
FeatureValue = Annotated[float, Strict()] | None
#: For models trained on customer attributes: numbers, category text, or null.
AttributeValue = Annotated[float, Strict()] | Annotated[str, Strict()] | None


class PredictionCreate(BaseModel):
    """Score one customer: by ``customer_id`` (features fetched from the customers service) or
    by raw ``features`` (missing ones are treated as unknown). Feature names and value types are
    checked against the serving model: the behavioural features (numbers) for the default and
    events-trained models, the model's own attribute columns (numbers or text) for a model
    trained on imported customer attributes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"customer_id": "c-42"},
                {"features": {"days_since_last_order": 120, "email_open_rate": 0.05}},
            ],
            # What ``_exactly_one`` enforces, declared for generated clients (null = not given).
            "oneOf": [
                {"required": ["customer_id"], "properties": {"customer_id": {"type": "string"}}},
                {"required": ["features"], "properties": {"features": {"type": "object"}}},
            ],
        },
    )

    customer_id: str | None = Field(default=None, min_length=1, max_length=64)
    features: dict[str, AttributeValue] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PredictionCreate:
        if (self.customer_id is None) == (self.features is None):
            raise ValueError("give exactly one of customer_id or features")
        return self


class DriverRead(BaseModel):
    """One feature's exact contribution (log-odds of the model's raw output) to a score."""

    feature: str
    value: float | str | None
    contribution: float
    direction: Literal["increases_risk", "decreases_risk"]


class PredictionRead(BaseModel):
    customer_id: str | None
    churn_probability: float
    risk_level: RiskLevel
    model_version: str
    drivers: list[DriverRead]
    recommendations: list[Recommendation] = Field(default_factory=list)


class BatchPredictionItem(BaseModel):
    churn_probability: float
    risk_level: RiskLevel
    drivers: list[DriverRead] | None = Field(
        default=None, description="Only with ?drivers=true: the top contributions."
    )
    recommendations: list[Recommendation] | None = Field(
        default=None, description="Only with ?drivers=true: actions derived from the drivers."
    )


class BatchPredictionRead(BaseModel):
    model_version: str
    predictions: list[BatchPredictionItem]


class ModelRead(BaseModel):
    version: str
    features: list[str]
    created_at: datetime
    metrics: dict[str, Any]
    is_default: bool = Field(description="True when the tenant is served by the global default.")
