"""The gateway's own errors; each renders as problem+json with its HTTP status."""

from __future__ import annotations

from typing import Any

from churn_shared.errors import (
    NotFoundError,
    ProblemError,
    ServiceUnavailableError,
    TooManyRequestsError,
)


class RouteNotFoundError(NotFoundError):
    """No upstream service serves this ``/v1`` path."""


class MethodNotAllowedError(ProblemError):
    """The path is one of the gateway's own operations, but not with this method (``Allow``)."""

    status, title, type_slug = 405, "Method Not Allowed", "method-not-allowed"


class BadGatewayError(ProblemError):
    status, title, type_slug = 502, "Bad Gateway", "bad-gateway"


class UpstreamUnavailableError(ServiceUnavailableError):
    """The upstream service could not be reached."""

    type_slug = "upstream-unavailable"


class UpstreamTimeoutError(ProblemError):
    status, title, type_slug = 504, "Gateway Timeout", "upstream-timeout"


class RateLimitedError(TooManyRequestsError):
    """Too many requests; carries how long to wait (``Retry-After``, seconds)."""

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = max(1, retry_after)

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class OpenAPIMergeError(ValueError):
    """The services' OpenAPI documents cannot be merged into one without ambiguity."""
