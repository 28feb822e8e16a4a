"""Settings of the auth service (environment prefix ``CHURN_AUTH_``)."""

from __future__ import annotations

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from churn_shared.clientaddr import Network, parse_networks
from churn_shared.ratelimit import CounterStoreSettings
from churn_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    """Where the auth service keeps its data and how long the tokens it issues live."""

    model_config = SettingsConfigDict(
        env_prefix="CHURN_AUTH_", extra="ignore", env_nested_delimiter="__"
    )

    service_name: str = "auth"
    database_url: SecretStr = SecretStr("sqlite+aiosqlite:///./data/auth.db")
    #: Lifetime of an access token (JWT); every service trusts it this long.
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=24 * 3600)
    #: Lifetime of one refresh token; each refresh issues a new one.
    refresh_token_ttl_seconds: int = Field(default=14 * 24 * 3600, ge=60, le=365 * 24 * 3600)
    #: A refresh token presented again this soon after its rotation answers the same new pair
    #: (two tabs refreshing at once; RFC 9700 §4.14.2); later, reuse revokes its family.
    #: ``0`` makes refresh tokens strictly single-use.
    refresh_token_reuse_grace_seconds: float = Field(default=10.0, ge=0, le=60)
    #: How many Argon2id hashes may run at once (each takes ~19 MiB and one core).
    password_hash_concurrency: int = Field(default=4, ge=1, le=64)
    #: Signing keys are reloaded from the database when older than this before signing
    #: (another replica or ``churn auth rotate-keys`` may have rotated them).
    signing_key_cache_seconds: float = Field(default=30.0, ge=0)
    #: Encrypts the signing private keys at rest (PKCS#8). Keys stored without it keep
    #: working; rotate once after setting it so the signing key is an encrypted one. Set it
    #: in production (a warning is logged outside development mode when it is missing).
    signing_key_passphrase: SecretStr | None = None
    #: The JWKS endpoint reloads keys older than this, so verifiers see new keys quickly.
    jwks_cache_seconds: float = Field(default=5.0, ge=0)
    #: Request rate limits (``limits`` notation, any outcome) on login and refresh; switched
    #: off together by ``rate_limit_enabled``. There is deliberately no per-account request
    #: limit on login: anyone could spend it and keep the owner out (docs/login-throttling.md).
    login_rate_limit_per_address: str = "60/minute"
    refresh_rate_limit_per_address: str = "120/minute"
    refresh_rate_limit_per_account: str = "60/minute"
    rate_limit_enabled: bool = True
    rate_limit_key_prefix: str = "churn-auth"
    #: Timeout and circuit breaker of the Redis calls (``cache_url``); while Redis is slow or
    #: down every counter below is kept in-process.
    rate_limit_storage: CounterStoreSettings = Field(default_factory=CounterStoreSettings)
    #: Failed sign-ins, always on (docs/login-throttling.md). One account from one address:
    #: after ``lockout_threshold`` consecutive failures that pair is locked for
    #: ``lockout_base_seconds``, doubling with each further failure up to
    #: ``lockout_max_seconds``; failures are remembered ``lockout_memory_seconds`` from the
    #: first one, or until a successful sign-in from that address.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_base_seconds: int = Field(default=30, ge=1)
    lockout_max_seconds: int = Field(default=900, ge=1)
    lockout_memory_seconds: int = Field(default=24 * 3600, ge=60)
    #: One address, every account: failed sign-ins allowed per sliding window, then 429.
    login_failures_per_address: str = "30/15 minutes"
    #: One account, every address: failed sign-ins per sliding window after which each sign-in
    #: attempt on the account waits ``login_account_delay_seconds`` (a delay, never a lock).
    login_failures_per_account: str = "50/15 minutes"
    login_account_delay_seconds: float = Field(default=1.0, ge=0, le=10)
    #: Peers whose ``X-Forwarded-For`` is believed (the gateway); loopback by default.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    #: Lifetime of the access token handed out for a verified API key.
    api_key_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    @field_validator(
        "login_rate_limit_per_address",
        "refresh_rate_limit_per_address",
        "refresh_rate_limit_per_account",
        "login_failures_per_address",
        "login_failures_per_account",
    )
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    def trusted_proxy_networks(self) -> list[Network]:
        return parse_networks(self.trusted_proxies)

    def signing_key_passphrase_bytes(self) -> bytes | None:
        secret = self.signing_key_passphrase
        return secret.get_secret_value().encode() if secret and secret.get_secret_value() else None
