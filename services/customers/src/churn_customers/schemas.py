"""Request and response bodies of the customers service."""

from __future__ import annotations

from datetime import datetime
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
    #: Line of the file (1 = the header) where the rejected row ends.
    line: int
    error: str


class ImportRead(BaseModel):
    """How an import went. ``errors`` lists the first 50 rejected rows (``rows_rejected`` counts
    them all); ``failure`` says why the whole file was refused, when it was."""

    model_config = ConfigDict(from_attributes=True)

    import_id: str
    status: ImportStatus
    filename: str | None = None
    id_column: str
    rows_total: int
    rows_imported: int
    rows_rejected: int
    errors: list[ImportRowError]
    failure: str | None = None
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
