"""Request and response shapes of the model registry."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from churn_shared.fields import DateString, IntegerOnly

#: The horizons the customers service builds point-in-time sets for (an enum in the schema).
Horizon = Annotated[Literal[30, 60, 90, 180], IntegerOnly]


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

    cutoff: DateString
    horizon_days: Horizon = 90


class BaselineScores(BaseModel):
    roc_auc: float | None
    pr_auc: float | None
    brier: float = Field(
        description="For a baseline: its score mapped to a probability by a cross-fitted "
        "one-feature logistic regression."
    )


class BgnbdParameters(BaseModel):
    """BG/NBD parameters (Fader, Hardie & Lee 2005), time in days."""

    r: float
    alpha: float
    a: float
    b: float


class BgnbdScores(BaselineScores):
    params: list[BgnbdParameters] = Field(description="One fit per cutoff, without labels.")


class ParetoNbdParameters(BaseModel):
    """Pareto/NBD parameters (Schmittlein, Morrison & Colombo 1987), time in days."""

    r: float
    alpha: float
    s: float
    beta: float


class ParetoNbdScores(BaselineScores):
    params: list[ParetoNbdParameters] = Field(description="One fit per cutoff, without labels.")


class Lift(BaseModel):
    """The model's ROC-AUC minus the baseline's, with a paired-bootstrap 95 % interval."""

    roc_auc_diff: float | None
    ci_low: float | None
    ci_high: float | None


class BaselineLifts(BaseModel):
    recency: Lift
    bgnbd: Lift
    pareto_nbd: Lift | None = None


class BootstrapSettings(BaseModel):
    replicates: int
    seed: int
    interval: float


class BaselineComparison(BaseModel):
    """The model beside the textbook baselines on the same customers: days since the last
    order (recency), and BG/NBD's and Pareto/NBD's expected purchases in the horizon."""

    model: BaselineScores
    recency: BaselineScores
    bgnbd: BgnbdScores
    pareto_nbd: ParetoNbdScores | None = None
    lift: BaselineLifts
    horizon_days: float
    bootstrap: BootstrapSettings


class EvaluationRead(BaseModel):
    version: str
    cutoff: date
    horizon_days: int
    roc_auc: float | None
    pr_auc: float | None
    brier: float
    n_customers: int
    positive_rate: float
    baselines: dict[str, float | None] = Field(
        description="ROC-AUC of each baseline (`recency`, `bgnbd`, `pareto_nbd`); details in "
        "`comparison`."
    )
    comparison: BaselineComparison | None = Field(
        default=None, description="None when the set lacks the behavioural features."
    )
    ece: float | None = Field(
        default=None, description="Expected calibration error over 10 equal-width bins."
    )
    calibration_table: list[dict[str, Any]]


class ShadowReport(BaseModel):
    """How the challenger's shadow scores compare with the champion's on the same snapshots."""

    champion: str | None
    challenger: str | None
    n: int
    agreement: float | None = Field(description="Share of snapshots with the same risk level.")
    mean_abs_diff: float | None
