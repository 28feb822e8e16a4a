"""Tables of the customers service, on its own registry (its own schema and Alembic history).

The hot paths (event ingest, feature upserts, score updates) use the Core tables exposed at the
bottom of this module; ordinary CRUD goes through the same tables.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from churn_shared.db import UTCDateTime
from churn_shared.kafka import outbox_table, processed_events_table


class Base(SQLModel, registry=registry()):
    pass


def _utc_column(*, nullable: bool = False) -> Any:
    return sa.Column(UTCDateTime(), nullable=nullable)


def _json_column() -> Any:
    return sa.Column(sa.JSON(), nullable=False)


def _bigint_id() -> Any:
    return sa.Column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )


class Customer(Base, table=True):
    """A tenant's customer, known by the tenant's own id, with the latest churn score."""

    __tablename__ = "customers"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "customer_id", name="uq_customers_tenant_customer"),
        # The list's sorts (descending, ties by ascending id) walk these in order: MariaDB
        # reads a mixed-direction order from an index only when the index has that direction.
        sa.Index(
            "ix_customers_tenant_probability_desc",
            "tenant_id",
            sa.column("churn_probability").desc(),
            "customer_id",
        ),
        sa.Index(
            "ix_customers_tenant_updated_desc",
            "tenant_id",
            sa.column("updated_at").desc(),
            "customer_id",
        ),
        # The customer-list filters (risk level; prefix search on e-mail and name).
        sa.Index("ix_customers_tenant_risk", "tenant_id", "risk_level", "customer_id"),
        sa.Index("ix_customers_tenant_search_email", "tenant_id", "search_email"),
        sa.Index("ix_customers_tenant_search_name", "tenant_id", "search_name"),
    )

    id: int | None = Field(default=None, sa_column=_bigint_id())
    tenant_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    created_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())
    #: When the platform received the customer's first event (null until then).
    first_seen_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    churn_probability: float | None = Field(
        default=None, sa_column=sa.Column(sa.Double(), nullable=True)
    )
    risk_level: str | None = Field(default=None, max_length=16)
    model_version: str | None = Field(default=None, max_length=128)
    scored_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    #: The ``email`` and ``name`` attributes, lower-cased and cut to 255 characters, kept by
    #: every attribute write so that the list's ``q`` is an index range, not a JSON scan.
    search_email: str | None = Field(default=None, max_length=255)
    search_name: str | None = Field(default=None, max_length=255)


class CustomerEvent(Base, table=True):
    """One raw event as received (HTTP or Kafka); ``event_id`` is unique per tenant."""

    __tablename__ = "events"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "event_id", name="uq_events_tenant_event"),
        sa.Index("ix_events_tenant_customer_occurred", "tenant_id", "customer_id", "occurred_at"),
        # Retention curves read a tenant's orders from this index alone (customer, then time).
        sa.Index(
            "ix_events_tenant_type_customer_occurred",
            "tenant_id",
            "type",
            "customer_id",
            "occurred_at",
        ),
    )

    id: int | None = Field(default=None, sa_column=_bigint_id())
    tenant_id: str = Field(max_length=64)
    event_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    type: str = Field(max_length=32)
    occurred_at: datetime = Field(sa_column=_utc_column())
    properties: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    received_at: datetime = Field(sa_column=_utc_column())


class CustomerFeatures(Base, table=True):
    """A customer's latest feature profile (``churn_shared.contracts.PROFILE_FEATURE_NAMES``)."""

    __tablename__ = "customer_features"
    __table_args__ = (sa.Index("ix_customer_features_as_of", "as_of"),)

    tenant_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64)
    features: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    as_of: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())
    #: Not before this may the score reconciler re-send this profile again (null: never re-sent
    #: since it was computed). Grows with the profile's age, so a profile that stays unscored
    #: (the prediction service is down) is re-sent ever more rarely, not every round.
    republish_after: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    #: What live ingest updates the features from (``churn_customers.features.FeatureState``
    #: as JSON); null, or of another version, until it is next rebuilt from the history.
    state: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON(), nullable=True)
    )


class CustomerImport(Base, table=True):
    """One uploaded customer file and how its import went (``status``: queued, running,
    succeeded, failed). ``errors`` holds the first rejected rows, ``{"line", "error"}``; all
    of them (up to a limit) are in ``customer_import_errors``.

    The file waits in the imports directory until a runner claims the import (``attempts``,
    ``heartbeat_at``: a runner that stops renewing it lost it); ``processed_rows`` is how far
    the committed batches reached, where a resumed import carries on."""

    __tablename__ = "customer_imports"
    __table_args__ = (
        sa.Index("ix_customer_imports_tenant_created", "tenant_id", "created_at"),
        sa.Index("ix_customer_imports_status_created", "status", "created_at"),
        sa.Index("ix_customer_imports_tenant_content", "tenant_id", "content_key"),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_customer_imports_tenant_idempotency_key"
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    status: str = Field(max_length=16)
    filename: str | None = Field(default=None, max_length=255)
    id_column: str = Field(max_length=255)
    rows_total: int = 0
    rows_imported: int = 0
    rows_rejected: int = 0
    errors: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False)
    )
    #: Why the whole import failed (unreadable file, missing id column …), when it did.
    failure: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    created_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=_utc_column())
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    #: ``csv`` or ``xlsx``; the text encoding of a CSV (``utf-8``, ``utf-8-bom``,
    #: ``windows-1252``).
    file_format: str = Field(default="csv", max_length=8)
    encoding: str | None = Field(default=None, max_length=16)
    #: The column mapping (``churn_customers.importing.ColumnMapping.as_json``).
    mapping: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON(), nullable=True)
    )
    file_bytes: int = 0
    #: SHA-256 of the file and the mapping: the same upload again is the same import.
    content_key: str | None = Field(default=None, max_length=64)
    idempotency_key: str | None = Field(default=None, max_length=255)
    processed_rows: int = 0
    attempts: int = 0
    heartbeat_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class CustomerImportError(Base, table=True):
    """A row an import rejected: its line, the column and value at fault, and why."""

    __tablename__ = "customer_import_errors"

    import_id: str = Field(primary_key=True, max_length=36)
    line: int = Field(primary_key=True)
    tenant_id: str = Field(max_length=64)
    column: str | None = Field(default=None, max_length=255)
    value: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    reason: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))


class CustomerScore(Base, table=True):
    """One score a customer received (``churn.scores.v1``), kept as their risk history; a
    redelivered score (same customer, time and model) is stored once."""

    __tablename__ = "customer_scores"
    __table_args__ = (
        sa.UniqueConstraint(
            "tenant_id",
            "customer_id",
            "scored_at",
            "model_version",
            name="uq_customer_scores_tenant_customer_scored_model",
        ),
        sa.Index("ix_customer_scores_tenant_scored", "tenant_id", "scored_at"),
    )

    id: int | None = Field(default=None, sa_column=_bigint_id())
    tenant_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    scored_at: datetime = Field(sa_column=_utc_column())
    churn_probability: float = Field(sa_column=sa.Column(sa.Double(), nullable=False))
    risk_level: str = Field(max_length=16)
    model_version: str = Field(max_length=128)
    #: The score's top drivers (``churn_shared.contracts.Driver`` as JSON).
    drivers: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON(), nullable=False)
    )


class CustomerRiskChange(Base, table=True):
    """A change of a customer's latest risk level (``from_level`` null: their first score),
    written with the score that made it; the dashboard's and cohorts' daily trends add them up.
    A customer's changes go when the customer does."""

    __tablename__ = "customer_risk_changes"
    __table_args__ = (
        # The trends group a tenant's changes by day and levels from this index alone, in order.
        sa.Index(
            "ix_customer_risk_changes_tenant_day",
            "tenant_id",
            "day",
            "from_level",
            "to_level",
            "customer_id",
        ),
        # A customer's changes (deleted with them); a cohort's trend joins its members to
        # their changes and reads day and levels from this index alone.
        sa.Index(
            "ix_customer_risk_changes_customer_levels",
            "tenant_id",
            "customer_id",
            "changed_at",
            "day",
            "from_level",
            "to_level",
        ),
    )

    id: int | None = Field(default=None, sa_column=_bigint_id())
    tenant_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    #: When the score that changed the level was computed (its ``scored_at``).
    changed_at: datetime = Field(sa_column=_utc_column())
    #: ``changed_at``'s UTC day.
    day: date = Field(sa_column=sa.Column(sa.Date(), nullable=False))
    from_level: str | None = Field(default=None, max_length=16)
    to_level: str = Field(max_length=16)


class CustomerRiskDay(Base, table=True):
    """A tenant's customers per risk level at the end of a past UTC day, and how many moved up
    during it: the dashboard trend's rollup of :class:`CustomerRiskChange`, filled when a trend
    first needs the day and dropped from a day on when that day's history changes (a late
    score, a deletion)."""

    __tablename__ = "customer_risk_days"

    tenant_id: str = Field(primary_key=True, max_length=64)
    day: date = Field(sa_column=sa.Column(sa.Date(), primary_key=True))
    high: int
    medium: int
    low: int
    unscored: int
    moved_up: int


class CustomerTag(Base, table=True):
    """A tag the retention team put on a customer (bulk tag/untag; the list's ``tag`` filter)."""

    __tablename__ = "customer_tags"
    __table_args__ = (sa.Index("ix_customer_tags_tenant_tag", "tenant_id", "tag", "customer_id"),)

    tenant_id: str = Field(primary_key=True, max_length=64)
    customer_id: str = Field(primary_key=True, max_length=64)
    tag: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(sa_column=_utc_column())


class CustomerCohort(Base, table=True):
    """A saved segment: a name and a customer filter (``CustomerFilter`` as JSON)."""

    __tablename__ = "customer_cohorts"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "name", name="uq_customer_cohorts_tenant_name"),
    )

    id: str = Field(primary_key=True, max_length=36)
    tenant_id: str = Field(max_length=64)
    name: str = Field(max_length=100)
    filter: dict[str, Any] = Field(default_factory=dict, sa_column=_json_column())
    created_by: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=_utc_column())
    updated_at: datetime = Field(sa_column=_utc_column())


class CustomerAttributeRescan(Base, table=True):
    """A tenant whose customers' attributes are being sent again (one
    ``CustomerAttributesChangedV1`` each), page by page in customer id order, because its
    champion moved: a champion that reads imported attributes then scores the customers
    imported before it. ``after_customer_id`` is the last customer sent (``None``: none yet);
    the row is deleted once every customer has been sent, and a newer move starts it over.
    ``model_version`` (the champion that started it) is for an operator reading the table."""

    __tablename__ = "customer_attribute_rescans"

    tenant_id: str = Field(primary_key=True, max_length=64)
    model_version: str | None = Field(default=None, max_length=64)
    after_customer_id: str | None = Field(default=None, max_length=64)
    requested_at: datetime = Field(sa_column=_utc_column())


def _table(model: type[SQLModel]) -> sa.Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


customers: sa.Table = _table(Customer)
events: sa.Table = _table(CustomerEvent)
customer_features: sa.Table = _table(CustomerFeatures)
customer_imports: sa.Table = _table(CustomerImport)
customer_import_errors: sa.Table = _table(CustomerImportError)
customer_scores: sa.Table = _table(CustomerScore)
customer_tags: sa.Table = _table(CustomerTag)
customer_risk_changes: sa.Table = _table(CustomerRiskChange)
customer_risk_days: sa.Table = _table(CustomerRiskDay)
customer_cohorts: sa.Table = _table(CustomerCohort)
customer_attribute_rescans: sa.Table = _table(CustomerAttributeRescan)
outbox = outbox_table(Base.metadata)
processed_events = processed_events_table(Base.metadata)
