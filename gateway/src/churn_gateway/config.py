"""Gateway settings (environment prefix ``CHURN_GATEWAY_``)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from limits import parse as parse_rate_limit
from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from churn_shared.clientaddr import Network, parse_networks
from churn_shared.ratelimit import CounterStoreSettings
from churn_shared.settings import ServiceSettings

_ORIGIN = re.compile(r"https?://[^/\s]+")


class Settings(ServiceSettings):
    """Where the upstream services live, and how the edge protects them."""

    model_config = SettingsConfigDict(env_prefix="CHURN_GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    auth_url: str = "http://127.0.0.1:8001"
    customers_url: str = "http://127.0.0.1:8002"
    prediction_url: str = "http://127.0.0.1:8003"
    alerts_url: str = "http://127.0.0.1:8004"
    #: Browser origins allowed to call the API and open the live feed (CORS), e.g.
    #: ``https://app.example.com,https://admin.example.com`` or a JSON list; ``*`` allows any.
    #: Empty (the default) sends no CORS headers: same-origin browsers only.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Let browsers send cookies or HTTP authentication cross-origin
    #: (``Access-Control-Allow-Credentials``). Off by default: the API's bearer tokens travel in
    #: the ``Authorization`` header and need no credentials mode. Not allowed with ``*``.
    cors_allow_credentials: bool = False
    #: Per client address, on every route (``limits`` notation).
    rate_limit: str = "600/minute"
    #: Per client address on ``POST /v1/auth/login`` and ``/v1/auth/refresh``.
    auth_rate_limit: str = "20/minute"
    #: Per tenant (from the verified token), on every authenticated route.
    tenant_rate_limit: str = "3000/minute"
    rate_limit_enabled: bool = True
    #: Prefix of the rate-limit keys in the shared storage (Redis).
    rate_limit_key_prefix: str = "churn-gateway"
    #: Timeout and circuit breaker of the Redis calls (``cache_url``); while Redis is slow or
    #: down the limits are counted in-process. Redis is not part of readiness.
    rate_limit_storage: CounterStoreSettings = Field(default_factory=CounterStoreSettings)
    #: Peers (addresses or networks) whose ``X-Forwarded-For`` is believed, e.g. an ingress.
    trusted_proxies: list[str] = Field(default_factory=list)
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    #: File uploads (``POST /v1/predictions/jobs``) are streamed to the service, not held in
    #: memory, up to this size (413 beyond); keep it equal to the service's ``max_job_bytes``.
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, ge=1024)
    #: How long a verified API key is trusted without asking auth again (≤ 60 s; a revoked key
    #: stops working within this time), and how long a refused key stays refused (≤ 5 s).
    api_key_cache_seconds: float = Field(default=60.0, ge=0, le=60)
    api_key_failure_cache_seconds: float = Field(default=5.0, ge=0, le=5)
    #: How long the merged OpenAPI document is reused before the upstreams are asked again.
    openapi_cache_seconds: float = Field(default=300.0, ge=0)

    @field_validator("rate_limit", "auth_rate_limit", "tenant_rate_limit")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        parse_rate_limit(value)
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        """A comma-separated list or a JSON list (from the environment), or a list."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _valid_origins(cls, value: list[str]) -> list[str]:
        origins = []
        for raw in value:
            origin = raw.strip().rstrip("/")
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise ValueError(f"not an origin (scheme://host[:port]): {raw!r}")
            origins.append(origin)
        return origins

    @model_validator(mode="after")
    def _no_credentials_for_everyone(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("cors_allow_credentials cannot be combined with cors_origins '*'")
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    def upstream_urls(self) -> dict[str, str]:
        """Base URL of each upstream service, by name."""
        return {
            "auth": self.auth_url.rstrip("/"),
            "customers": self.customers_url.rstrip("/"),
            "prediction": self.prediction_url.rstrip("/"),
            "alerts": self.alerts_url.rstrip("/"),
        }

    def trusted_proxy_networks(self) -> list[Network]:
        return parse_networks(self.trusted_proxies)
