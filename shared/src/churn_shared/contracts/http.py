"""HTTP contracts: what the prediction service reads from the customers service, a customer's
feature profile (``GET /v1/customers/{id}/features``) and the training sets
(``GET /v1/training-sets/customers`` and ``GET /v1/training-sets/events``), and the scoring
inputs of a filtered selection of customers (``POST /v1/internal/scoring-inputs``, read page by
page by prediction jobs over a filter).

The customers routes answer with these models and the prediction client parses the responses
into them, so neither side reads the other's JSON by string keys. Unknown fields are ignored:
a field the customers service adds must not break a reader deployed before it. The class names
are the OpenAPI component names: renaming one renames a schema clients generate code from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class CustomerFeaturesRead(BaseModel):
    # No docstring: it would become the schema's description in the published OpenAPI document.
    model_config = ConfigDict(frozen=True)

    customer_id: str
    features: dict[str, float | None]
    as_of: datetime


class CustomerTrainingSet(BaseModel):
    """The tenant's customers that have the label attribute, one row each: ``customer_id`` first,
    then every attribute key any customer has (null where a customer lacks it)."""

    model_config = ConfigDict(frozen=True)

    columns: list[str]
    rows: list[list[Any]]
    id_column: str = "customer_id"


class EventTrainingSet(BaseModel):
    """A point-in-time training set: one row per customer (per cutoff) with events at or before
    the cutoff; ``labels[i]`` is 1 when that customer placed no order in
    (cutoff, cutoff + horizon_days]."""

    model_config = ConfigDict(frozen=True)

    feature_names: list[str]
    customer_ids: list[str]
    features: list[list[float | None]]
    labels: list[int]
    #: The (latest) cutoff; ``cutoffs`` lists all of them and ``row_cutoffs`` gives each row's.
    cutoff: str
    cutoffs: list[str]
    row_cutoffs: list[str]
    horizon_days: int
    days_since_last_order: list[float | None]
    positive_rate: float
    n_customers: int
    n_rows: int


#: Most customers one page of scoring inputs holds.
MAX_SCORING_INPUTS_PAGE = 1_000


class ScoringInputsQuery(BaseModel):
    """One page of the customers matching ``filter`` (the filters of ``GET /v1/customers``, as
    JSON: the customers service validates them), after the customer id ``after``, in id order.
    ``count_up_to``: also count the matching customers, at most this many."""

    model_config = ConfigDict(frozen=True)

    filter: dict[str, Any] = Field(default_factory=dict)
    after: str | None = Field(default=None, max_length=64)
    limit: int = Field(default=MAX_SCORING_INPUTS_PAGE, ge=0, le=MAX_SCORING_INPUTS_PAGE)
    count_up_to: int | None = Field(default=None, ge=1, le=100_000_000)


class CustomerScoringInput(BaseModel):
    """What a model may read about one customer: the feature profile (``null`` when the
    customer has none yet: no events) and the imported attributes."""

    model_config = ConfigDict(frozen=True)

    customer_id: str
    features: dict[str, float | None] | None
    attributes: dict[str, Any]


class ScoringInputsPage(BaseModel):
    """A page of scoring inputs; ``next_after`` (the last id) asks for the next one, ``null``
    at the end. ``total``: how many match (up to ``count_up_to``), when it was asked for."""

    model_config = ConfigDict(frozen=True)

    customers: list[CustomerScoringInput]
    next_after: str | None
    total: int | None = None
