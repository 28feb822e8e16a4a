"""Settings of the customers service (environment prefix ``CHURN_CUSTOMERS_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from churn_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHURN_CUSTOMERS_", extra="ignore", env_nested_delimiter="__"
    )

    service_name: str = "customers"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/customers.db")
    #: Kafka consumer groups are ``<consumer_group>-events`` and ``<consumer_group>-scores``.
    consumer_group: str = "churn-customers"
    #: Largest ``POST /v1/events`` batch; a larger one is answered 413.
    max_events_per_batch: int = Field(default=10_000, ge=1, le=100_000)
    #: Largest customer file ``POST /v1/customers/import`` accepts; a larger one is answered 413.
    #: The service's request body limit is raised to fit it (``max_body_bytes`` still applies
    #: to every other route's body size when it is larger).
    max_import_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    #: Most rows (after the header, blank lines not counted) a customer file may hold; a file
    #: with more is answered 413 before anything is stored. The file is read as a stream either
    #: way; this bounds how long an import runs and holds its locks.
    max_import_rows: int = Field(default=200_000, ge=1, le=10_000_000)
    #: Imports of one tenant that may be queued or running at once; another is answered 429
    #: with ``Retry-After``.
    max_concurrent_imports: int = Field(default=2, ge=1, le=100)
    #: A queued or running import older than this no longer counts towards
    #: ``max_concurrent_imports``; a queued one whose file no replica has by then is failed.
    stale_import_after_seconds: float = Field(default=3600.0, gt=0)
    #: Where uploaded customer files wait until they are imported (deleted after). It must
    #: outlive the process (a volume): an import the service stopped during resumes from it.
    #: Replicas that share it can take over each other's imports.
    imports_dir: Path = Path("./data/customer-imports")
    #: Imports one process runs at once, and how often it looks for queued ones (an upload
    #: wakes it at once).
    import_workers: int = Field(default=1, ge=1, le=16)
    import_poll_seconds: float = Field(default=2.0, gt=0)
    #: A running import whose runner has not renewed it for this long is taken over (its
    #: process died) and resumed after the rows it committed.
    import_lease_seconds: float = Field(default=60.0, gt=0)
    #: An import the service stopped during this many times is failed with that reason.
    import_max_attempts: int = Field(default=3, ge=1, le=100)
    #: Least time between two progress writes (``import_progress`` on the live feed).
    import_progress_interval_seconds: float = Field(default=1.0, ge=0)
    #: Longest cell (characters); a row with a longer one is rejected.
    max_import_cell_chars: int = Field(default=32_767, ge=64, le=1_000_000)
    #: Rejected rows kept in an import's error report (all are counted).
    max_import_error_rows: int = Field(default=10_000, ge=50, le=1_000_000)
    #: XLSX zip limits, checked on its central directory before any of it is parsed: total
    #: uncompressed bytes, and the largest compression ratio of an entry (over 1 MiB) or of
    #: the whole archive.
    max_import_xlsx_uncompressed_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024)
    max_import_xlsx_ratio: float = Field(default=200.0, ge=10)
    #: Profiles older than this are recomputed and rescored even without new events, so
    #: time-based features (days since the last order, windows, account age) stay true.
    profile_max_age_hours: float = Field(default=24.0, gt=0)
    #: How often the refresher looks for such profiles (0 disables it).
    profile_refresh_interval_seconds: float = Field(default=600.0, ge=0)
    #: Profiles recomputed per transaction while refreshing.
    profile_refresh_batch_size: int = Field(default=500, ge=1, le=10_000)
    #: How often the score reconciler re-sends the profiles that were never scored (their
    #: message was lost with an in-memory broker, say); it also runs at start (0 disables it).
    score_reconcile_interval_seconds: float = Field(default=60.0, ge=0)
    #: A profile is re-sent only once it is older than this (the message may still be on its
    #: way to the prediction service), and then at most once per this long, doubling up to
    #: ``score_reconcile_max_backoff_seconds`` while it stays unscored.
    score_reconcile_grace_seconds: float = Field(default=120.0, gt=0)
    score_reconcile_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    #: Profiles re-sent per transaction while reconciling.
    score_reconcile_batch_size: int = Field(default=500, ge=1, le=10_000)
    #: When a tenant's champion moves, every customer's attributes are sent again (for a
    #: champion that reads imported attributes), this many customers per transaction; the
    #: rescans are woken by the move, and looked for every ``attribute_rescan_interval_seconds``
    #: too (one left by a stopped process; 0 disables the rescans).
    attribute_rescan_page_size: int = Field(default=500, ge=1, le=10_000)
    attribute_rescan_interval_seconds: float = Field(default=30.0, ge=0)
    #: A customer's score history (``GET /v1/customers/{id}/scores``) keeps this many days of
    #: scores; older ones are deleted, except each customer's latest. Every profile is rescored
    #: at least daily (``profile_max_age_hours``) and on every batch of its events, so the
    #: history would otherwise grow without end. Risk trends do not read it (they read the
    #: risk level changes), so a shorter retention does not shorten them.
    score_history_retention_days: float = Field(default=400.0, gt=0)
    #: How often old scores are deleted (0 disables it), and how many per transaction.
    score_history_prune_interval_seconds: float = Field(default=3600.0, ge=0)
    score_history_prune_batch_size: int = Field(default=5_000, ge=1, le=100_000)
    #: The auth service, asked whether the tenant of an event consumed from Kafka exists; by
    #: default next to ``jwks_url``.
    auth_url: str | None = None
    #: How long a tenant auth confirmed is remembered (tenants are not deleted today; the
    #: bound lets a future deletion take effect).
    known_tenant_cache_seconds: float = Field(default=3600.0, ge=0)
    #: How long a tenant auth does not know is remembered, so a stream of events for it costs
    #: one lookup per period (it is not cached longer, in case it is registered meanwhile).
    unknown_tenant_cache_seconds: float = Field(default=30.0, ge=0)
