"""Settings building blocks: every service's settings class derives from ``ServiceSettings``.

A service picks its own environment prefix (``CHURN_CUSTOMERS_`` …); the runtime mode is decided
purely by URLs: ``sqlite+aiosqlite://`` vs ``mysql+aiomysql://``, ``memory://`` vs ``redis://``.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service needs to know about its surroundings."""

    model_config = SettingsConfigDict(extra="ignore", env_nested_delimiter="__")

    service_name: str = "service"
    #: SQLAlchemy async URL of the service's own database.
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/service.db")
    #: Apply the Alembic history on start-up (embedded mode; production runs a migration job).
    auto_migrate: bool = True
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    #: Tansu holds each fetch until this wait expires, so keep it small (architecture notes).
    kafka_fetch_max_wait_ms: int = Field(default=10, ge=1, le=1000)
    kafka_linger_ms: int = Field(default=5, ge=0, le=1000)
    kafka_topic_partitions: int = Field(default=3, ge=1)
    #: ``memory://`` keeps caches and rate limits in-process; ``redis://host:port/db`` shares them.
    cache_url: str = "memory://"
    #: Where the auth service publishes its JSON Web Key Set.
    jwks_url: str = "http://127.0.0.1:8001/v1/auth/.well-known/jwks.json"
    token_issuer: str = "churn-auth"  # noqa: S105 - an issuer name, not a secret
    token_audience: str = "churn-platform"  # noqa: S105 - an audience name
    #: Development mode relaxes checks meant for the open internet (e.g. loopback webhook URLs).
    dev_mode: bool = False
    #: Start the Kafka consumers and the outbox relay inside the API process.
    run_workers: bool = True
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: Consumer idempotency records (``processed_events``) are kept this long, then pruned.
    processed_events_retention_hours: float = Field(default=168.0, gt=0)
    #: How often the pruning runs (0 disables it).
    housekeeping_interval_seconds: float = Field(default=3600.0, ge=0)
    log_level: str = "INFO"
    log_json: bool = True
