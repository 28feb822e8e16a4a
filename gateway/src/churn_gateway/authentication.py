"""Edge authentication: who is calling, decided before anything is forwarded.

A caller proves itself with a user's access token (``Authorization: Bearer <jwt>``), verified
locally against the auth service's JWKS, or with an integrator's API key (``X-API-Key: ck_...``
or ``Authorization: Bearer ck_...``), exchanged at the auth service for a short-lived access
token that is then forwarded upstream instead of the key. API keys are limited by their scopes
here, at the edge (:func:`api_key_allows`); the services enforce roles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from churn_shared.errors import ForbiddenError, UnauthorizedError
from churn_shared.security import (
    ApiKeyGrant,
    JwksSource,
    Principal,
    TokenVerifier,
    looks_like_api_key,
)

#: Verifies an API key and returns what it stands for; ``None`` refuses every key.
ApiKeyVerifier = Callable[[str], Awaitable[ApiKeyGrant]]

#: Paths only the services may call (answered 404 at the edge, as if they did not exist).
INTERNAL_PATHS: tuple[str, ...] = (
    "/v1/auth/api-keys/verify",
    "/v1/auth/tenants",
    # The services' parts of composed endpoints (the gateway's /v1/dashboard/*).
    "/v1/internal",
)


def pooled_jwks_source(client: httpx.AsyncClient, url: str) -> JwksSource:
    """Fetch the JWKS with the gateway's pooled upstream client."""

    async def fetch() -> dict[str, Any]:
        response = await client.get(url)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    return fetch


def is_internal_path(path: str) -> bool:
    """``path`` (already percent-decoded) is, or is below, an internal-only path."""
    segments = [part for part in path.lower().split("/") if part not in ("", ".")]
    normalized = "/" + "/".join(segments)
    return any(
        candidate == internal or candidate.startswith(internal + "/")
        for candidate in (path.lower(), normalized)
        for internal in INTERNAL_PATHS
    )


#: Paths of the standard inference protocols (Open Inference Protocol V2, MLflow scoring): an
#: API key's ``predictions`` scope covers them, as it covers ``/v1/predictions``.
INFERENCE_PREFIXES: tuple[str, ...] = ("/v2", "/invocations", "/version", "/ping", "/health")


def is_inference_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in INFERENCE_PREFIXES)


def api_key_allows(principal: Principal, method: str, path: str) -> bool:
    """Scopes of an API key: ``events:write`` → ``POST /v1/events``; ``predictions`` →
    ``/v1/predictions*`` and the inference protocols' paths; ``read`` → ``GET`` (and ``HEAD``)
    anywhere. Users are not limited."""
    if not principal.is_api_key:
        return True
    scopes = principal.scopes
    if method == "POST" and path == "/v1/events" and "events:write" in scopes:
        return True
    if (
        path == "/v1/predictions" or path.startswith("/v1/predictions/") or is_inference_path(path)
    ) and "predictions" in scopes:
        return True
    return method in ("GET", "HEAD") and "read" in scopes


def _looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2


@dataclass(frozen=True, slots=True)
class EdgeCaller:
    """An authenticated caller and the ``Authorization`` header to send upstream for it."""

    principal: Principal
    upstream_authorization: str

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def subject(self) -> str:
        return self.principal.subject


class EdgeAuthenticator:
    """Turns request credentials into an :class:`EdgeCaller` or raises ``UnauthorizedError``."""

    def __init__(
        self, token_verifier: TokenVerifier, *, api_key_verifier: ApiKeyVerifier | None = None
    ) -> None:
        self.token_verifier = token_verifier
        self._api_key_verifier = api_key_verifier

    async def authenticate_feed(self, credential: str) -> EdgeCaller:
        """The live feed's caller: a user's access token, or an API key (exchanged as on the
        REST edge) whose scopes include ``read`` (the feed shows what ``GET`` would)."""
        if not credential:
            raise UnauthorizedError("Missing access token.")
        caller = await self.authenticate(f"Bearer {credential}")
        if caller.principal.is_api_key and "read" not in caller.principal.scopes:
            raise ForbiddenError("This API key's scopes do not include 'read'.")
        return caller

    async def authenticate(
        self, authorization: str | None, api_key: str | None = None
    ) -> EdgeCaller:
        if not authorization:
            if api_key and api_key.strip():
                return await self._verify_api_key(api_key.strip())
            raise UnauthorizedError("Missing bearer token.")
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise UnauthorizedError("Expected 'Authorization: Bearer <access token>'.")
        if looks_like_api_key(credential):
            return await self._verify_api_key(credential)
        if not _looks_like_jwt(credential):
            raise UnauthorizedError("Malformed bearer credential.")
        principal = await self.token_verifier.verify(credential)
        return EdgeCaller(principal, f"Bearer {credential}")

    async def _verify_api_key(self, key: str) -> EdgeCaller:
        if self._api_key_verifier is None:
            raise UnauthorizedError("API keys are not accepted here.")
        grant = await self._api_key_verifier(key)
        return EdgeCaller(grant.principal, f"Bearer {grant.access_token}")


def check_api_key_scope(caller: EdgeCaller, method: str, path: str) -> None:
    """403 when an API key's scopes do not cover ``method path``."""
    if not api_key_allows(caller.principal, method, path):
        raise ForbiddenError(f"This API key's scopes do not allow {method} {path}.")
