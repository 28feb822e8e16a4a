"""Tables of the prediction service: the model registry, score history, outbox, idempotency."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Result
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_shared.db import UTCDateTime, utcnow
from churn_shared.kafka import outbox_table, processed_events_table

#: Model artifacts (LightGBM model strings) run to megabytes: LONGTEXT on MySQL.
ArtifactText = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


class Base(SQLModel, registry=registry()):
    pass


class ModelVersion(Base, table=True):
    """One trained model: its artifact, the features it reads and how it did on held-out data."""

    __tablename__ = "model_versions"

    version: str = Field(primary_key=True, max_length=64)
    #: ``None`` for the global default every tenant falls back to.
    tenant_id: str | None = Field(default=None, max_length=64, index=True)
    features: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    metrics: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    artifact: str = Field(sa_column=sa.Column(ArtifactText, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    #: ``lightgbm_booster`` (a LightGBM model string over FEATURE_NAMES) or ``pipeline``
    #: (base64 of :meth:`churn_prediction.training.model.TrainedModel.to_bytes`).
    kind: str = Field(
        default="lightgbm_booster",
        sa_column=sa.Column(
            sa.String(32), nullable=False, server_default=sa.text("'lightgbm_booster'")
        ),
    )
    #: ``{"features": [{name, kind, dtype, categories?}]}``; ``None`` on pre-registry rows.
    feature_schema: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    model_card: str | None = Field(default=None, sa_column=sa.Column(ArtifactText, nullable=True))
    #: ``{"source": "events", "cutoffs", "horizon_days"}`` or ``{"source": "customers", "label"}``.
    training_source: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )


class ModelAlias(Base, table=True):
    """A named pointer (``champion`` …) to a version, per tenant (``""`` for the global default)."""

    __tablename__ = "model_aliases"

    tenant_id: str = Field(default="", primary_key=True, max_length=64)
    alias: str = Field(primary_key=True, max_length=32)
    version: str = Field(max_length=64)
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class Score(Base, table=True):
    """One scoring of one customer's feature snapshot (history; the latest is the current one)."""

    __tablename__ = "scores"
    __table_args__ = (
        sa.Index("ix_scores_tenant_customer_scored", "tenant_id", "customer_id", "scored_at"),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    tenant_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    churn_probability: float = Field(sa_column=sa.Column(sa.Double(), nullable=False))
    risk_level: str = Field(max_length=8)
    model_version: str = Field(max_length=64)
    drivers: list[dict[str, Any]] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    scored_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class AliasChange(Base, table=True):
    """History of alias moves (promotions, rollbacks, new challengers), never updated."""

    __tablename__ = "model_alias_history"
    __table_args__ = (sa.Index("ix_model_alias_history_tenant_alias", "tenant_id", "alias", "id"),)

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    tenant_id: str = Field(max_length=64)
    alias: str = Field(max_length=32)
    version: str | None = Field(default=None, max_length=64)
    previous_version: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=16)
    actor: str | None = Field(default=None, max_length=64)
    changed_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class TrainingJob(Base, table=True):
    """One background training run and its progress."""

    __tablename__ = "training_jobs"

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64, index=True)
    status: str = Field(max_length=16)
    progress: int = 0
    stage: str = Field(default="", max_length=128)
    model_version: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    request: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


class PredictionJob(Base, table=True):
    """A file (or a customer filter's selection) scored in the background
    (``POST /v1/predictions/jobs``): its files live in the job directory; the row says what was
    asked, who runs it (``heartbeat_at``) and how far it got."""

    __tablename__ = "prediction_jobs"
    __table_args__ = (sa.Index("ix_prediction_jobs_status_heartbeat", "status", "heartbeat_at"),)

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64, index=True)
    #: ``queued`` → ``running`` → ``succeeded`` | ``failed``.
    status: str = Field(max_length=16)
    input_format: str = Field(max_length=16)
    input_bytes: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    model_version: str = Field(max_length=64)
    id_column: str | None = Field(default=None, max_length=200)
    #: A filter job's customer filter (the JSON body's ``customers``, as submitted); ``None``
    #: for a file.
    customers: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    #: Whether top drivers are written beside each score (``?drivers=true``).
    drivers: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean(), nullable=False, server_default="0")
    )
    progress: int = 0
    rows_total: int | None = None
    rows_scored: int = 0
    rows_failed: int = 0
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    #: How many times a runner claimed the job (a restart claims it again).
    attempts: int = 0
    #: Last sign of life of the runner that holds the job; ``None`` while queued.
    heartbeat_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True)
    )
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )
    finished_at: datetime | None = Field(
        default=None, sa_column=sa.Column(UTCDateTime(), nullable=True)
    )


class ShadowScore(Base, table=True):
    """A challenger's score next to the champion's for the same snapshot (never alerted on)."""

    __tablename__ = "shadow_scores"
    __table_args__ = (
        sa.Index(
            "ix_shadow_scores_tenant_versions",
            "tenant_id",
            "champion_version",
            "challenger_version",
        ),
    )

    id: int | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
    )
    tenant_id: str = Field(max_length=64)
    customer_id: str = Field(max_length=64)
    champion_version: str = Field(max_length=64)
    challenger_version: str = Field(max_length=64)
    champion_probability: float = Field(sa_column=sa.Column(sa.Double(), nullable=False))
    challenger_probability: float = Field(sa_column=sa.Column(sa.Double(), nullable=False))
    champion_risk: str = Field(max_length=8)
    challenger_risk: str = Field(max_length=8)
    scored_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class RecommendationRuleSet(Base, table=True):
    """A tenant's driver → action rules (absent: the defaults)."""

    __tablename__ = "recommendation_rules"

    tenant_id: str = Field(primary_key=True, max_length=64)
    rules: list[dict[str, Any]] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False)
    )


#: The producer every envelope this service writes to its outbox names.
PRODUCER = "churn-prediction"

outbox = outbox_table(Base.metadata)
processed_events = processed_events_table(Base.metadata)

model_versions_table: sa.Table = ModelVersion.__table__  # type: ignore[attr-defined]
model_aliases_table: sa.Table = ModelAlias.__table__  # type: ignore[attr-defined]
scores_table: sa.Table = Score.__table__  # type: ignore[attr-defined]
alias_history_table: sa.Table = AliasChange.__table__  # type: ignore[attr-defined]
training_jobs_table: sa.Table = TrainingJob.__table__  # type: ignore[attr-defined]
shadow_scores_table: sa.Table = ShadowScore.__table__  # type: ignore[attr-defined]


async def execute_core(
    session: AsyncSession, statement: sa.Executable, params: Any = None
) -> Result[Any]:
    """Run a Core statement on the session's connection (inside the session's transaction);
    the repositories' bulk and aggregate queries skip the ORM this way."""
    connection = await session.connection()
    return await connection.execute(statement, params)
