"""Request and response bodies of the customers service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

# The prediction service reads feature profiles and training sets: their shapes are shared
# contracts, re-exported here beside the other response bodies.
from churn_shared.contracts import CustomerFeaturesRead as CustomerFeaturesRead
from churn_shared.contracts import CustomerTrainingSet as CustomerTrainingSet
from churn_shared.contracts import Driver
from churn_shared.contracts import EventTrainingSet as EventTrainingSet
from churn_shared.contracts.events import CustomerEventType
from churn_shared.contracts.http import MAX_SCORING_INPUTS_PAGE
from churn_shared.contracts.http import ScoringInputsPage as ScoringInputsPage
from churn_shared.fields import Timestamp

CustomerSort = Literal["customer_id", "-churn_probability", "-updated_at"]
RiskLevel = Literal["low", "medium", "high"]

#: Attribute filters per request (each one is a scan of the tenant's JSON attributes).
MAX_ATTRIBUTE_FILTERS = 10
#: An imported attribute's name in a filter: no quotes or backslashes (it becomes a JSON path).
AttributeName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r'^[^"\\]+$')]
AttributeValue = Annotated[str, StringConstraints(max_length=255)]
TagName = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class CustomerFilter(BaseModel):
    """Which customers: every condition given must hold; ``risk_level`` matches any of its
    values. The same filter drives the list, the export, bulk actions and cohorts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "risk_level": ["high", "medium"],
                    "min_probability": 0.6,
                    "q": "ann",
                    "seen_before": "2026-11-01T00:00:00Z",
                    "attributes": {"plan": "gold"},
                }
            ]
        },
    )

    risk_level: list[RiskLevel] | None = Field(default=None, max_length=3)
    #: Latest churn probability at least this (unscored customers never match).
    min_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Latest churn probability at most this (unscored customers never match).
    max_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Prefix of the customer id (as stored), or of the ``email`` or ``name`` attribute
    #: (case-insensitive).
    q: str | None = Field(default=None, min_length=1, max_length=64)
    #: Last activity (an event, an import or an edit: ``updated_at``) at or after this.
    seen_after: AwareDatetime | None = None
    #: Last activity strictly before this (e.g. customers quiet since a date).
    seen_before: AwareDatetime | None = None
    #: Imported attributes equal to these values, compared as text (``3``, ``gold``, ``true``).
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTE_FILTERS
    )
    #: Customers carrying this tag (``POST /v1/customers/bulk`` tags them).
    tag: TagName | None = None
    #: Members of this saved cohort (its id): its filter applies too.
    segment: str | None = Field(default=None, min_length=1, max_length=36)

    _segment_filter: CustomerFilter | None = PrivateAttr(default=None)

    def attach_segment(self, saved: CustomerFilter) -> None:
        """The saved filter of ``segment``, looked up by the service before any query."""
        self._segment_filter = saved

    @property
    def segment_filter(self) -> CustomerFilter | None:
        return self._segment_filter

    @model_validator(mode="after")
    def _check_ranges(self) -> CustomerFilter:
        if (
            self.min_probability is not None
            and self.max_probability is not None
            and self.min_probability > self.max_probability
        ):
            raise ValueError("min_probability must not be above max_probability")
        if self.seen_after and self.seen_before and self.seen_after >= self.seen_before:
            raise ValueError("seen_after must be before seen_before")
        return self


class ScoringInputsIn(BaseModel):
    """``POST /v1/internal/scoring-inputs``: the shared ``ScoringInputsQuery`` contract, its
    filter read as this service's :class:`CustomerFilter` (a bad one is a 422)."""

    model_config = ConfigDict(extra="forbid")

    filter: CustomerFilter = Field(default_factory=CustomerFilter)
    after: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=MAX_SCORING_INPUTS_PAGE, ge=0, le=MAX_SCORING_INPUTS_PAGE)
    count_up_to: int | None = Field(default=None, ge=1, le=100_000_000)


#: ``order_placed`` properties that must be numbers ≥ 0 when present.
ORDER_NUMERIC_PROPERTIES = ("amount", "discount")


def order_properties_problem(event_type: str, properties: dict[str, Any]) -> str | None:
    """Why an event's properties are unacceptable, or ``None`` (shared by HTTP and Kafka)."""
    if event_type != "order_placed":
        return None
    for name in ORDER_NUMERIC_PROPERTIES:
        if name not in properties:
            continue
        value = properties[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return f"order_placed.properties.{name} must be a number >= 0"
        if value != value or value == float("inf"):
            return f"order_placed.properties.{name} must be a finite number"
    return None


class EventIn(BaseModel):
    """One thing a customer did."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=64)
    customer_id: str = Field(min_length=1, max_length=64)
    type: CustomerEventType
    occurred_at: Timestamp
    properties: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_properties(self) -> EventIn:
        problem = order_properties_problem(self.type, self.properties)
        if problem:
            raise ValueError(problem)
        return self


class EventBatchIn(BaseModel):
    """``POST /v1/events``: up to ``max_events_per_batch`` events (10,000 by default)."""

    events: list[EventIn]


class EventBatchAccepted(BaseModel):
    #: Events stored by this request.
    accepted: int
    #: Events already stored for the tenant, or repeated inside the batch (applied once).
    duplicates: int


class CustomerBase(BaseModel):
    attributes: dict[str, Any] = Field(default_factory=dict)


class CustomerCreate(CustomerBase):
    model_config = ConfigDict(extra="forbid")

    customer_id: str = Field(min_length=1, max_length=64)


class CustomerUpdate(BaseModel):
    """A JSON merge patch of the attributes: given keys are set, keys given as null removed."""

    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, Any]


class CustomerRead(CustomerBase):
    model_config = ConfigDict(from_attributes=True)

    customer_id: str
    churn_probability: float | None = None
    risk_level: str | None = None
    model_version: str | None = None
    scored_at: datetime | None = None
    first_seen_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class CustomerDetail(CustomerRead):
    """A customer with their current feature profile and tags."""

    tags: list[str] = Field(default_factory=list)

    features: dict[str, float | None] | None = None
    features_as_of: datetime | None = None


class CustomerPage(BaseModel):
    items: list[CustomerRead]
    next_cursor: str | None = None


class ScoreHistoryItem(BaseModel):
    """One score the customer received, with the drivers behind it."""

    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "scored_at": "2026-11-20T09:15:02Z",
                    "churn_probability": 0.83,
                    "risk_level": "high",
                    "model_version": "acme-7",
                    "drivers": [
                        {
                            "feature": "payment_failures_last_90d",
                            "value": 3,
                            "contribution": 1.42,
                            "direction": "increases_risk",
                        }
                    ],
                }
            ]
        },
    )

    scored_at: datetime
    churn_probability: float
    risk_level: RiskLevel
    model_version: str
    #: The score's top drivers, largest contribution first.
    drivers: list[Driver]


class ScoreHistoryPage(BaseModel):
    """A customer's scores, newest first; ``next_cursor`` fetches older ones."""

    items: list[ScoreHistoryItem]
    next_cursor: str | None = None


ImportStatus = Literal["queued", "running", "succeeded", "failed"]


class ImportAccepted(BaseModel):
    """``POST /v1/customers/import``: the file is stored and will be imported in the background."""

    import_id: str


class ImportRowError(BaseModel):
    #: Line of the file (1 = the header; the sheet's row number in an XLSX) of the rejected row.
    line: int
    error: str
    #: The column and value at fault, when one is.
    column: str | None = None
    value: str | None = None


class ImportMapping(BaseModel):
    """Which column of the file is what (the ``mapping`` form field of the upload)."""

    id: str = Field(description="The column holding each customer's id")
    email: str | None = Field(default=None, description="Stored as the attribute `email`")
    name: str | None = Field(default=None, description="Stored as the attribute `name`")
    label: str | None = Field(
        default=None, description="The label column (kept under its own name)"
    )
    attributes: list[str] | None = Field(
        default=None, description="The other columns kept; null: every one"
    )


class ImportRead(BaseModel):
    """How an import went. ``errors`` lists the first 50 rejected rows (``rows_rejected`` counts
    them all; ``GET /v1/customers/imports/{id}/errors`` lists them as CSV); ``failure`` says
    why the whole file was refused, when it was. ``processed_rows`` of ``total_rows`` is the
    progress (``total_rows`` is null until the file was counted)."""

    model_config = ConfigDict(from_attributes=True)

    import_id: str
    status: ImportStatus
    filename: str | None = None
    file_format: Literal["csv", "xlsx"] = "csv"
    #: ``utf-8``, ``utf-8-bom`` or ``windows-1252`` (CSV); null for XLSX.
    encoding: str | None = None
    id_column: str
    mapping: ImportMapping | None = None
    rows_total: int
    total_rows: int | None = None
    processed_rows: int = 0
    rows_imported: int
    rows_rejected: int
    errors: list[ImportRowError]
    failure: str | None = None
    #: How many times a runner took this import (more than one: the service stopped during it
    #: and it was resumed after the rows it had committed).
    attempts: int = 0
    created_at: datetime
    finished_at: datetime | None = None


#: Customers one bulk action may touch (more: narrow the filter or split the id list).
MAX_BULK_CUSTOMERS = 10_000
BulkAction = Literal["tag", "untag", "delete"]


class BulkActionIn(BaseModel):
    """``POST /v1/customers/bulk``: one action on a list of ids or on every customer matching
    a filter (exactly one of the two). ``dry_run`` only counts the customers it would touch."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "tag", "tag": "win-back-q4", "filter": {"risk_level": ["high"]}},
                {"action": "delete", "customer_ids": ["c-41", "c-42"], "dry_run": True},
            ]
        },
    )

    action: BulkAction
    #: The tag to add or remove (``tag`` and ``untag`` only).
    tag: TagName | None = None
    customer_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = (
        Field(default=None, min_length=1, max_length=MAX_BULK_CUSTOMERS)
    )
    filter: CustomerFilter | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _check(self) -> BulkActionIn:
        if (self.customer_ids is None) == (self.filter is None):
            raise ValueError("give exactly one of customer_ids and filter")
        if (self.action in ("tag", "untag")) != (self.tag is not None):
            raise ValueError("tag and untag need a tag; delete takes none")
        return self


class BulkActionResult(BaseModel):
    """What a bulk action touched: ``matched`` customers (existing ids, or the filter's
    matches), ``changed`` of them (0 for a dry run; for tag/untag those whose tags changed)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"action": "tag", "dry_run": False, "matched": 120, "changed": 118}]
        }
    )

    action: BulkAction
    dry_run: bool
    matched: int
    changed: int


CohortName = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]


class CohortCreate(BaseModel):
    """A saved segment: a name (unique in the tenant) and a customer filter."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Gold at risk",
                    "filter": {"risk_level": ["high", "medium"], "attributes": {"plan": "gold"}},
                }
            ]
        },
    )

    name: CohortName
    filter: CustomerFilter


class CohortUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"filter": {"risk_level": ["high"]}}]}
    )

    name: CohortName | None = None
    filter: CustomerFilter | None = None


class CohortRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    filter: CustomerFilter
    created_at: datetime
    updated_at: datetime


class CohortList(BaseModel):
    items: list[CohortRead]


class RiskLevelCounts(BaseModel):
    """Customers per latest risk level; ``unscored``: not scored yet."""

    high: int = 0
    medium: int = 0
    low: int = 0
    unscored: int = 0


class RiskTrendDay(BaseModel):
    """One UTC day: the customers per risk level at its end (today: now), and how many of them
    moved up a risk level during it (low → medium, medium → high, low → high; a first score
    is not a move)."""

    date: date
    risk_levels: RiskLevelCounts
    moved_up: int


class RiskTrend(BaseModel):
    """Day by day, oldest first, the last day included."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {
                            "date": "2026-11-30",
                            "risk_levels": {"high": 120, "medium": 300, "low": 760, "unscored": 20},
                            "moved_up": 4,
                        },
                        {
                            "date": "2026-12-01",
                            "risk_levels": {"high": 126, "medium": 296, "low": 758, "unscored": 21},
                            "moved_up": 7,
                        },
                    ]
                }
            ]
        }
    )

    items: list[RiskTrendDay]


class CustomersSummary(BaseModel):
    """The customers' part of the dashboard (``GET /v1/dashboard/summary`` at the gateway).
    ``score_histogram[i]`` counts the scored customers with i/20 ≤ probability < (i+1)/20
    (1.0 in the last bin); ``revenue_at_risk`` = Σ over scored customers of churn probability
    * the customer's spend in the last 90 days (``spend_last_90d``: their ``order_placed``
    amounts, 0 without orders)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customers": 1200,
                    "risk_levels": {"high": 126, "medium": 296, "low": 758, "unscored": 20},
                    "score_histogram": [
                        *(310, 220, 128, 100, 60, 50, 45, 40, 35, 30),
                        *(30, 28, 25, 22, 20, 18, 10, 5, 2, 2),
                    ],
                    "moved_up_last_7_days": 31,
                    "revenue_at_risk": 18342.5,
                }
            ]
        }
    )

    customers: int
    risk_levels: RiskLevelCounts
    score_histogram: list[int]
    moved_up_last_7_days: int
    revenue_at_risk: float


class CohortStats(BaseModel):
    """The cohort's members now: how many, their risk levels (``unscored`` for customers with
    no score yet), their mean churn probability (scored members) and the revenue at risk,
    Σ churn probability * the member's spend in the last 90 days (``spend_last_90d``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cohort_id": "5b0c8e1e-2d7f-4a53-9a55-5d7f0c1b2a11",
                    "name": "Gold at risk",
                    "size": 412,
                    "risk_levels": {"high": 130, "medium": 282},
                    "mean_probability": 0.61,
                    "revenue_at_risk": 18342.5,
                    "trend": [
                        {
                            "date": "2026-11-30",
                            "risk_levels": {"high": 121, "medium": 291, "low": 0, "unscored": 0},
                            "moved_up": 3,
                        },
                        {
                            "date": "2026-12-01",
                            "risk_levels": {"high": 130, "medium": 282, "low": 0, "unscored": 0},
                            "moved_up": 9,
                        },
                    ],
                }
            ]
        }
    )

    cohort_id: str
    name: str
    size: int
    risk_levels: dict[str, int]
    mean_probability: float | None
    revenue_at_risk: float
    #: The members' (those of now) risk levels at the end of each of the last ``days`` days.
    trend: list[RiskTrendDay] = Field(default_factory=list)


#: A retention curve's period: calendar months, or ISO weeks (Monday to Sunday, UTC).
RetentionPeriod = Literal["month", "week"]


class RetentionCohort(BaseModel):
    """The customers whose first ``order_placed`` fell in ``cohort`` (``2010-12``, or an ISO
    week ``2010-W49``): ``retention[k]`` is the share of them that ordered in the k-th period
    after it (``retention[0]`` is 1.0), up to the tenant's latest order."""

    cohort: str
    size: int
    retention: list[float]


class RetentionCurves(BaseModel):
    """Retention curves per acquisition cohort (a triangle: newer cohorts have fewer periods).
    The examples are the first cohorts of the UCI Online Retail file, as if it ended in the
    third period."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "period": "month",
                    "cohorts": [
                        {"cohort": "2010-12", "size": 948, "retention": [1.0, 0.3819, 0.3344]},
                        {"cohort": "2011-01", "size": 421, "retention": [1.0, 0.2399]},
                        {"cohort": "2011-02", "size": 380, "retention": [1.0]},
                    ],
                },
                {
                    "period": "week",
                    "cohorts": [
                        {"cohort": "2010-W48", "size": 323, "retention": [1.0, 0.2477, 0.2663]},
                        {"cohort": "2010-W49", "size": 368, "retention": [1.0, 0.2337]},
                        {"cohort": "2010-W50", "size": 214, "retention": [1.0]},
                    ],
                },
            ]
        }
    )

    period: RetentionPeriod
    cohorts: list[RetentionCohort]
