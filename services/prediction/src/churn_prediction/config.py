"""Settings of the prediction service (environment prefix ``CHURN_PREDICTION_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from churn_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHURN_PREDICTION_", extra="ignore", env_nested_delimiter="__"
    )

    service_name: str = "prediction"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/prediction.db")
    #: Base URL of the customers service (features for scoring by customer id).
    customers_url: str = "http://127.0.0.1:8002"
    customers_timeout_seconds: float = Field(default=5.0, gt=0)
    #: Risk bands: low < ``low_risk_below`` ≤ medium < ``high_risk_from`` ≤ high.
    low_risk_below: float = Field(default=0.4, gt=0.0, lt=1.0)
    high_risk_from: float = Field(default=0.7, gt=0.0, lt=1.0)
    #: Most rows one ``POST /v1/predictions/batch`` may carry (413 beyond).
    max_batch_rows: int = Field(default=10_000, ge=1)
    #: How many drivers (largest contributions) come with each score.
    drivers_top_k: int = Field(default=3, ge=0, le=32)
    #: Training of the global default model on simulated history, when the registry has none.
    default_model_customers: int = Field(default=6_000, ge=200)
    default_model_seed: int = 42
    default_model_trees: int = Field(default=200, ge=1)
    #: OpenMP threads per training/predict call (1 is fastest on a busy 2-core machine).
    model_num_threads: int = Field(default=1, ge=1, le=64)
    #: Base URL of the auth service, where integrators' API keys are verified (``None``: the
    #: origin of ``jwks_url``).
    auth_url: str | None = None
    #: How long a verified API key is trusted without asking auth again (≤ 60 s), and how long
    #: a refused one stays refused (≤ 5 s).
    api_key_cache_seconds: float = Field(default=60.0, ge=0, le=60)
    api_key_failure_cache_seconds: float = Field(default=5.0, ge=0, le=5)
    #: Consumer group of the feature-snapshot scorer.
    scorer_group_id: str = "churn-prediction-scorer"
    #: Timeout of one training-set export from the customers service.
    training_set_timeout_seconds: float = Field(default=300.0, gt=0)
    #: Least time between two progress writes (DB + ``model.training.v1``) of a training job.
    training_progress_interval_seconds: float = Field(default=0.5, gt=0)
    #: How long a tenant's recommendation rules are cached in memory (per replica).
    recommendation_rules_ttl_seconds: float = Field(default=5.0, ge=0)

    #: Where file batch jobs keep their input, results and error report (one directory per
    #: job; replicas that share jobs must share it).
    prediction_jobs_dir: Path = Path("./data/prediction-jobs")
    #: Largest file one ``POST /v1/predictions/jobs`` may upload (413 beyond), and most rows.
    max_job_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    max_job_rows: int = Field(default=1_000_000, ge=1)
    #: Rows scored at a time (memory stays bounded by one chunk).
    job_chunk_rows: int = Field(default=100_000, ge=100)
    #: Jobs one replica runs at once (each in a process of its own).
    max_concurrent_jobs: int = Field(default=1, ge=1, le=16)
    #: A running job whose runner has not written for this long is taken over (a crash).
    job_lease_seconds: float = Field(default=30.0, gt=0)
    #: How often a replica looks for jobs to take when nothing wakes it.
    job_poll_seconds: float = Field(default=5.0, gt=0)
    #: Least time between two progress writes (DB + ``prediction.jobs.v1``) of a job.
    job_progress_interval_seconds: float = Field(default=1.0, gt=0)
    #: A job worker process (its imports take seconds) is kept this long after its last job.
    job_worker_idle_seconds: float = Field(default=300.0, ge=0)
    #: A job the service stopped during this many times is failed instead of started again.
    job_max_attempts: int = Field(default=3, ge=1)
    #: Bad rows listed in a job's error report (all are counted).
    job_max_error_rows: int = Field(default=10_000, ge=1)
    #: A finished job (succeeded or failed) is deleted, its files and its row, this long after
    #: it finished; so is a job directory no row names (an upload a crash cut short) this old.
    job_retention_days: float = Field(default=7.0, gt=0)
    #: How often a replica that runs the jobs deletes those past their retention.
    job_cleanup_interval_seconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _bands_in_order(self) -> Settings:
        if self.low_risk_below > self.high_risk_from:
            raise ValueError("low_risk_below must not exceed high_risk_from")
        return self
