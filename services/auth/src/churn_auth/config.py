"""Settings of the auth service (environment prefix ``CHURN_AUTH_``)."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

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
    #: Rate limits (``limits`` notation) on login and refresh, per client address and account.
    login_rate_limit_per_address: str = "60/minute"
    login_rate_limit_per_account: str = "20/minute"
    refresh_rate_limit_per_address: str = "120/minute"
    refresh_rate_limit_per_account: str = "60/minute"
    rate_limit_enabled: bool = True
    rate_limit_key_prefix: str = "churn-auth"
    #: Consecutive failed logins before the account is locked, and the lock's growth.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_base_seconds: int = Field(default=30, ge=1)
    lockout_max_seconds: int = Field(default=900, ge=1)
    #: Peers whose ``X-Forwarded-For`` is believed (the gateway); loopback by default.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])
    #: Lifetime of the access token handed out for a verified API key.
    api_key_token_ttl_seconds: int = Field(default=300, ge=30, le=3600)

    @field_validator(
        "login_rate_limit_per_address",
        "login_rate_limit_per_account",
        "refresh_rate_limit_per_address",
        "refresh_rate_limit_per_account",
    )
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ip_network(item, strict=False)
        return value

    def trusted_proxy_networks(self) -> list[IPv4Network | IPv6Network]:
        return [ip_network(item, strict=False) for item in self.trusted_proxies]

    def signing_key_passphrase_bytes(self) -> bytes | None:
        secret = self.signing_key_passphrase
        return secret.get_secret_value().encode() if secret and secret.get_secret_value() else None
