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
    #: How long a consumer on the way from an event to its alert lets the broker hold a fetch
    #: that finds nothing. The embedded broker (Tansu) does not answer a held fetch as soon as
    #: a message arrives, so the default stays short: 50 ms added about 6 ms to a hop's p50
    #: (15 ms to its p90) over 10 ms, and cut the idle embedded stack from 1.07 cores to 0.44
    #: (the broker answering every consumer 100 times a second). Apache Kafka answers as soon
    #: as it has data: deployments on it set 500 (docker-compose.yml, k8s/base/configmap.yaml).
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=1, le=1000)
    #: The same for consumers off the path from an event to its alert (score bookkeeping,
    #: model reloads, deletions): an idle consumer asks the broker once per wait, and at 10 ms
    #: the stack's idle consumers kept a quarter of a core busy doing so.
    kafka_background_fetch_max_wait_ms: int = Field(default=250, ge=1, le=1000)
    kafka_linger_ms: int = Field(default=5, ge=0, le=1000)
    #: The most messages one consumer batch (one transaction) takes: a smaller batch is
    #: committed, and its results sent on, sooner; a larger one costs less per message.
    kafka_max_poll_records: int = Field(default=500, ge=1, le=10_000)
    kafka_topic_partitions: int = Field(default=3, ge=1)
    #: A consumer that sends no heartbeat for this long leaves its group (its partitions go to
    #: the others). Tansu also holds a new member's join for about half of it, so a test run,
    #: which starts thousands of consumers, sets it low (tests/README); production keeps
    #: aiokafka's default.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=500, le=300_000)
    #: How often a consumer tells its group it is alive (a third of the session or less).
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100, le=100_000)
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
