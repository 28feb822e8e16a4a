"""Settings of the alerts service (environment prefix ``CHURN_ALERTS_``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from churn_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CHURN_ALERTS_", extra="ignore", env_nested_delimiter="__"
    )

    service_name: str = "alerts"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/alerts.db")
    #: Kafka consumer group reading ``churn.scores.v1``.
    consumer_group: str = "churn-alerts"
    #: A delivery that failed this many times is ``dead`` (listed, replayable).
    max_delivery_attempts: int = Field(default=6, ge=1, le=50)
    #: Wait before retry ``n`` is ``base * 2 ** (n - 1)`` seconds, capped at the maximum.
    delivery_backoff_base_seconds: float = Field(default=10.0, gt=0)
    delivery_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    #: Timeout of one webhook POST.
    delivery_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: How often the delivery worker looks for due deliveries when nobody wakes it.
    delivery_poll_interval_seconds: float = Field(default=1.0, gt=0)
    #: Deliveries claimed (and posted concurrently) per round.
    delivery_batch_size: int = Field(default=50, ge=1, le=1000)
    #: On shutdown the worker claims nothing new and lets the round in flight finish for this
    #: long; sends still running then are cancelled and recorded (``not_sent`` or ``unknown``),
    #: never left to be posted again blindly. Keep it above the timeout of one POST.
    delivery_shutdown_grace_seconds: float = Field(default=10.0, ge=0, le=120)
    #: The auth service (its users API checks assignees); by default next to ``jwks_url``.
    auth_url: str | None = None
    #: How often snoozed alerts whose time has come are reopened.
    snooze_check_interval_seconds: float = Field(default=15.0, gt=0)
    #: The longest ``Retry-After`` honoured (a receiver asking for more gets this).
    delivery_retry_after_max_seconds: float = Field(default=3600.0, gt=0)
    #: Pacing of generic webhooks per channel (Slack and Discord have their own, fixed).
    webhook_burst: int = Field(default=10, ge=1, le=1000)
    webhook_rate_per_second: float = Field(default=10.0, gt=0, le=1000)
    #: A channel whose deliveries went dead this many times in a row is disabled.
    channel_disable_after_dead: int = Field(default=5, ge=1, le=1000)
    #: The console's base URL: digests link each alert to ``<base>/alerts/<id>``. Unset: no
    #: links.
    console_base_url: str | None = None
    #: How often channels in a digest mode are checked for a digest that is due.
    digest_check_interval_seconds: float = Field(default=30.0, gt=0)

    @field_validator("console_base_url")
    @classmethod
    def _console_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")) or any(c in value for c in '<>|" \n'):
            raise ValueError("console_base_url must be an http(s) URL")
        return value

    # --- e-mail channels: the operator's SMTP server (never tenant-supplied, so not subject to
    # the webhook URL policy). Unset ``smtp_host``: e-mail channels cannot be created.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    #: ``starttls`` (upgrade after connecting, port 587), ``tls`` (implicit TLS, port 465) or
    #: ``none`` (plain; only for a relay on the same host or network).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    #: The ``From`` address (``churn-alerts@<smtp_host>`` when unset).
    smtp_from: str | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
