"""Request and response shapes of the prediction API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from churn_shared.contracts import FEATURE_NAMES

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
            ]
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


class Recommendation(BaseModel):
    """An action the tenant's rule table gives for one of the score's drivers."""

    action: str
    message: str
    feature: str
    contribution: float


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


def _feature_properties() -> dict[str, Any]:
    return {name: {"type": ["number", "null"]} for name in FEATURE_NAMES}


#: The batch body, documented as JSON schema (the route validates its shape itself, fast).
BATCH_REQUEST_SCHEMA: dict[str, Any] = {
    "title": "BatchPredictionCreate",
    "description": (
        "Exactly one of `rows` (one object per row) or `columns` (one array per feature, all of "
        "equal length). At most `max_batch_rows` rows (default 10,000; 413 beyond). Values are "
        "numbers or null; a missing feature counts as unknown (NaN); an unknown feature name "
        "is refused (422)."
    ),
    "oneOf": [
        {
            "type": "object",
            "title": "BatchRows",
            "properties": {
                "rows": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": _feature_properties(),
                        "additionalProperties": False,
                    },
                }
            },
            "required": ["rows"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "title": "BatchColumns",
            "properties": {
                "columns": {
                    "type": "object",
                    "properties": {
                        name: {"type": "array", "items": {"type": ["number", "null"]}}
                        for name in FEATURE_NAMES
                    },
                    "additionalProperties": False,
                    "minProperties": 1,
                }
            },
            "required": ["columns"],
            "additionalProperties": False,
        },
    ],
    "examples": [
        {"rows": [{"days_since_last_order": 3, "email_open_rate": 0.5, "total_orders": 12}]},
        {"columns": {"days_since_last_order": [3, 180], "email_open_rate": [0.5, None]}},
    ],
}


class ModelRead(BaseModel):
    version: str
    features: list[str]
    created_at: datetime
    metrics: dict[str, Any]
    is_default: bool = Field(description="True when the tenant is served by the global default.")


class ModelListItem(BaseModel):
    version: str
    tenant_id: str | None = Field(description="None for the global default models.")
    aliases: list[str]
    features: list[str]
    metrics: dict[str, Any]
    created_at: datetime
    kind: str = Field(default="lightgbm_booster", description="lightgbm_booster or pipeline")
    training_source: dict[str, Any] | None = None


class ModelList(BaseModel):
    items: list[ModelListItem]


class ModelDetail(ModelListItem):
    feature_schema: dict[str, Any] | None = None
    model_card: str | None = None
    online: bool = Field(
        description="Reads the behavioural features, so it can score the online event stream."
    )


Horizon = Literal[30, 60, 90, 180]


class TrainingCreate(BaseModel):
    """Train a tenant model: on point-in-time sets built from the event history (``events``:
    one ``cutoff`` or several ``cutoffs`` stacked, time-ordered cross-validation), or on the
    imported customer attributes with a ``label`` column (``customers``)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"source": "events", "cutoff": "2011-06-01", "horizon_days": 90},
                {"source": "customers", "label": "Churn"},
            ]
        },
    )

    source: Literal["events", "customers"]
    cutoff: date | None = None
    cutoffs: list[date] | None = Field(default=None, min_length=1, max_length=24)
    horizon_days: Horizon = 90
    label: str | None = Field(default=None, min_length=1, max_length=200)
    features: list[str] | None = Field(default=None, min_length=1, max_length=500)

    @model_validator(mode="after")
    def _source_fields(self) -> TrainingCreate:
        if self.source == "events":
            if (self.cutoff is None) == (self.cutoffs is None):
                raise ValueError("events training needs exactly one of cutoff or cutoffs")
            if self.label is not None or self.features is not None:
                raise ValueError("label and features apply to customers training only")
        else:
            if self.label is None:
                raise ValueError("customers training needs a label column")
            if self.cutoff is not None or self.cutoffs is not None:
                raise ValueError("cutoff(s) apply to events training only")
        return self

    def cutoff_list(self) -> list[date]:
        return sorted(set(self.cutoffs or ([self.cutoff] if self.cutoff else [])))


class TrainingJobAccepted(BaseModel):
    job_id: str


JobStatus = Literal["queued", "running", "succeeded", "failed"]


class TrainingJobRead(BaseModel):
    job_id: str
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    stage: str
    model_version: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: Literal["champion", "challenger"]


class AliasRead(BaseModel):
    """Where an alias of the caller's tenant points after a promotion or rollback
    (``version`` None: the tenant is served by the global default)."""

    alias: str
    version: str | None
    previous_version: str | None


class EvaluationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cutoff: date
    horizon_days: Horizon = 90


class EvaluationRead(BaseModel):
    version: str
    cutoff: date
    horizon_days: int
    roc_auc: float | None
    pr_auc: float | None
    brier: float
    n_customers: int
    positive_rate: float
    baselines: dict[str, float | None]
    calibration_table: list[dict[str, Any]]


class ShadowReport(BaseModel):
    """How the challenger's shadow scores compare with the champion's on the same snapshots."""

    champion: str | None
    challenger: str | None
    n: int
    agreement: float | None = Field(description="Share of snapshots with the same risk level.")
    mean_abs_diff: float | None


class RecommendationRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature: str = Field(min_length=1, max_length=200)
    direction: Literal["increases_risk", "decreases_risk"] = "increases_risk"
    action: str = Field(min_length=1, max_length=100)
    message: str = Field(default="", max_length=1000)


class RecommendationRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RecommendationRule] = Field(max_length=200)
