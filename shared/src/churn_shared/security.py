"""Local verification of the auth service's access tokens against its JWKS.

Only asymmetric algorithms are accepted (``alg: none`` and HMAC tokens are refused before any key
is looked up); a token must carry ``kid``, ``iss``, ``aud``, ``sub``, ``tid``, ``role``, ``exp``,
``iat`` and ``typ == "access"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from churn_shared.errors import (
    ForbiddenError,
    ProblemError,
    ServiceUnavailableError,
    UnauthorizedError,
)
from churn_shared.logging import get_logger

_log = get_logger(__name__)

ALLOWED_ALGORITHMS = ("EdDSA",)
ROLES = ("viewer", "analyst", "admin", "owner")
#: Integrator API keys look like ``ck_<secret>``; their exchanged access tokens have a subject
#: ``apikey:<key id>`` and carry the key's scopes in the ``scp`` claim.
API_KEY_PREFIX = "ck_"
API_KEY_SUBJECT_PREFIX = "apikey:"
API_KEY_SCOPES = ("events:write", "predictions", "read")
_MAX_API_KEY_LENGTH = 256

JwksSource = Callable[[], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, for which tenant, with which role."""

    subject: str
    tenant_id: str
    role: str
    token_id: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    #: The token's ``iat`` (seconds since the epoch), for per-user revocation checks.
    issued_at: float | None = None

    def has_role(self, minimum: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(minimum)

    @property
    def is_api_key(self) -> bool:
        """The caller is an integrator's API key (its scopes limit what it may do)."""
        return self.subject.startswith(API_KEY_SUBJECT_PREFIX)

    def has_scope(self, scope: str) -> bool:
        """Users are not limited by scopes; API keys only hold the scopes they were given."""
        return not self.is_api_key or scope in self.scopes


def http_jwks_source(url: str, *, timeout: float = 5.0) -> JwksSource:
    async def fetch() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=timeout) as client:
            response = await client.get(url)
            response.raise_for_status()
            data: dict[str, Any] = response.json()
            return data

    return fetch


class TokenVerifier:
    """Verifies access tokens against the auth service's key set.

    The key set is cached for ``ttl_seconds``. A token whose ``kid`` is not in the cache (a key
    rotated in since the last fetch) triggers one refetch; refetches are spaced at least
    ``min_refetch_seconds`` apart and concurrent requests share one, so forged ``kid`` values
    cannot flood the auth service, while a genuinely new key is picked up after at most that
    short wait instead of being refused.

    A verified token is remembered for at most ``cache_seconds`` (and never beyond its own
    expiry, nor once its key has left the key set): checking an EdDSA signature and the claims
    costs more than the rest of a small request, and an access token is valid until it expires
    anyway (nothing revokes it earlier). At most ``cache_size`` tokens are remembered.
    """

    def __init__(
        self,
        source: JwksSource,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: float = 300.0,
        leeway_seconds: float = 5.0,
        min_refetch_seconds: float = 1.0,
        cache_seconds: float = 30.0,
        cache_size: int = 4096,
    ) -> None:
        self._source = source
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds
        self._leeway = leeway_seconds
        self._min_refetch = min_refetch_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._cache_seconds = cache_seconds
        self._cache_size = cache_size
        #: token → (principal, its key id, monotonic time until which it is trusted)
        self._verified: dict[str, tuple[Principal, str, float]] = {}

    async def _fetch(self) -> None:
        try:
            jwks = await self._source()
        except Exception as exc:
            _log.warning("jwks_fetch_failed", error=str(exc))
            if not self._keys:
                # The caller's token may be fine: the keys are what is missing (auth not up
                # yet, or slow). 503 + Retry-After says "try again", not "log in again".
                raise ServiceUnavailableError(
                    "Token keys are not available yet; retry shortly.",
                    headers={"Retry-After": "1"},
                ) from exc
            return
        keys: dict[str, Any] = {}
        for jwk in jwks.get("keys", []):
            try:
                keys[jwk["kid"]] = jwt.PyJWK.from_dict(jwk)
            except (KeyError, jwt.PyJWKError):
                continue
        self._keys = keys
        self._fetched_at = time.monotonic()

    async def warm_up(self, *, attempts: int = 30, delay_seconds: float = 1.0) -> bool:
        """Fetch the key set before the first request needs it, retrying while the auth
        service is not answering yet; whether keys were loaded. Run it in the background: a
        process must start even when auth starts after it."""
        for attempt in range(attempts):
            try:
                async with self._lock:
                    await self._fetch()
            except ProblemError:
                pass
            if self._keys:
                return True
            await asyncio.sleep(min(delay_seconds * (attempt + 1), 5.0))
        return False

    async def _ensure_fresh(self) -> None:
        if self._keys and time.monotonic() - self._fetched_at < self._ttl:
            return
        async with self._lock:
            if not self._keys or time.monotonic() - self._fetched_at >= self._ttl:
                await self._fetch()

    async def _refetch_for(self, kid: str) -> None:
        asked_at = time.monotonic()
        async with self._lock:
            if kid in self._keys or self._fetched_at >= asked_at:
                return  # another request already refetched after we asked
            wait = self._fetched_at + self._min_refetch - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._fetch()

    async def verify(self, token: str) -> Principal:
        hit = self._verified.get(token)
        if hit is not None:
            principal, kid, until = hit
            if time.monotonic() < until and kid in self._keys:
                return principal
            del self._verified[token]
        principal, kid, expires_at = await self._verify(token)
        if self._cache_seconds > 0:
            remaining = min(self._cache_seconds, expires_at - time.time())
            if remaining > 0:
                if len(self._verified) >= self._cache_size:
                    del self._verified[next(iter(self._verified))]
                self._verified[token] = (principal, kid, time.monotonic() + remaining)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, str, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise UnauthorizedError("Malformed token.") from exc
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise UnauthorizedError("Token algorithm not allowed.")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise UnauthorizedError("Token has no key id.")
        await self._ensure_fresh()
        if kid not in self._keys:
            await self._refetch_for(kid)
        key = self._keys.get(kid)
        if key is None:
            raise UnauthorizedError("Token signed with an unknown key.")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "tid", "role", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UnauthorizedError("Token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"Invalid token: {exc}") from exc
        if claims.get("typ") != "access":
            raise UnauthorizedError("Not an access token.")
        if claims.get("role") not in ROLES:
            raise UnauthorizedError("Token carries an unknown role.")
        principal = Principal(
            subject=str(claims["sub"]),
            tenant_id=str(claims["tid"]),
            role=str(claims["role"]),
            token_id=claims.get("jti"),
            scopes=frozenset(claims.get("scp", [])),
            issued_at=float(claims["iat"]),
        )
        return principal, kid, float(claims["exp"])


JWKS_PATH = "/v1/auth/.well-known/jwks.json"
API_KEY_VERIFY_PATH = "/v1/auth/api-keys/verify"


def api_key_verify_url(auth_url: str | None, jwks_url: str) -> str:
    """The auth service's key-verification endpoint: under ``auth_url`` when given, else next to
    the JWKS (which the auth service serves at ``/v1/auth/.well-known/jwks.json``)."""
    base = auth_url.rstrip("/") if auth_url else jwks_url.removesuffix(JWKS_PATH).rstrip("/")
    return base + API_KEY_VERIFY_PATH


def looks_like_api_key(credential: str) -> bool:
    return credential.startswith(API_KEY_PREFIX)


@dataclass(frozen=True, slots=True)
class ApiKeyGrant:
    """A verified API key: its principal and the short-lived access token that stands for it."""

    principal: Principal
    access_token: str = field(repr=False)
    key_id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class _CachedGrant:
    grant: ApiKeyGrant | None
    expires_at: float


class ApiKeyExchanger:
    """Exchanges an API key for an access token at the auth service
    (``POST {auth}/v1/auth/api-keys/verify``), and verifies that token locally.

    Successful exchanges are cached in-process for at most ``ttl_seconds`` (≤ 60 s, and never
    beyond the token's own expiry), refused keys for at most ``failure_ttl_seconds`` (≤ 5 s);
    the cache is keyed by the SHA-256 of the key, never the key itself. A revoked key therefore
    stops working within ``ttl_seconds``.
    """

    MAX_TTL_SECONDS = 60.0
    MAX_FAILURE_TTL_SECONDS = 5.0

    def __init__(
        self,
        client: httpx.AsyncClient,
        verify_url: str,
        verifier: TokenVerifier,
        *,
        ttl_seconds: float = 60.0,
        failure_ttl_seconds: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= ttl_seconds <= self.MAX_TTL_SECONDS:
            raise ValueError("ttl_seconds must be between 0 and 60")
        if not 0 <= failure_ttl_seconds <= self.MAX_FAILURE_TTL_SECONDS:
            raise ValueError("failure_ttl_seconds must be between 0 and 5")
        self._client = client
        self._verify_url = verify_url
        self._verifier = verifier
        self._ttl = ttl_seconds
        self._failure_ttl = failure_ttl_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._cache: dict[str, _CachedGrant] = {}

    @staticmethod
    def cache_key(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def _remember(self, digest: str, grant: ApiKeyGrant | None, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache.pop(digest, None)
        while len(self._cache) >= self._max_entries:
            self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = _CachedGrant(grant, self._clock() + ttl)

    def forget(self, key: str) -> None:
        self._cache.pop(self.cache_key(key), None)

    async def exchange(self, key: str) -> ApiKeyGrant:
        if not looks_like_api_key(key) or len(key) > _MAX_API_KEY_LENGTH:
            raise UnauthorizedError("Malformed API key.")
        digest = self.cache_key(key)
        cached = self._cache.get(digest)
        if cached is not None:
            if cached.expires_at > self._clock():
                if cached.grant is None:
                    raise UnauthorizedError("Invalid or revoked API key.")
                return cached.grant
            self._cache.pop(digest, None)
        try:
            response = await self._client.post(self._verify_url, json={"key": key})
        except httpx.HTTPError as exc:
            _log.warning("api_key_verify_unreachable", error=repr(exc))
            raise ServiceUnavailableError("API keys cannot be verified right now.") from exc
        if response.status_code in (400, 401, 403, 404, 422):
            self._remember(digest, None, self._failure_ttl)
            raise UnauthorizedError("Invalid or revoked API key.")
        if response.status_code != 200:
            _log.warning("api_key_verify_failed", status=response.status_code)
            raise ServiceUnavailableError("API keys cannot be verified right now.")
        try:
            body: dict[str, Any] = response.json()
            access_token = str(body["access_token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceUnavailableError("The auth service answered nonsense.") from exc
        principal = await self._verifier.verify(access_token)
        if not principal.is_api_key or principal.tenant_id != str(body.get("tenant_id")):
            raise UnauthorizedError("The API key's token does not match the key.")
        grant = ApiKeyGrant(
            principal=principal,
            access_token=access_token,
            key_id=body.get("key_id"),
            name=body.get("name"),
        )
        exp = jwt.decode(access_token, options={"verify_signature": False}).get("exp")
        ttl = self._ttl
        if isinstance(exp, int | float):
            ttl = min(ttl, float(exp) - time.time() - 30.0)
        self._remember(digest, grant, ttl)
        return grant


_bearer = HTTPBearer(auto_error=False, description="Access token from POST /v1/auth/login")


def _api_key_from(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None:
        if credentials.scheme.lower() == "bearer" and looks_like_api_key(credentials.credentials):
            return credentials.credentials
        return None
    header = request.headers.get("x-api-key")
    return header.strip() if header else None


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the verified caller (``app.state.token_verifier`` must be set).

    When the app also has ``app.state.api_key_exchanger`` (an :class:`ApiKeyExchanger`), an API
    key (``X-API-Key`` or ``Authorization: Bearer ck_...``) is accepted too. Either way the
    caller's access token is left in ``request.state.access_token`` for calls made on its behalf
    (see :func:`forwarded_authorization`).
    """
    exchanger: ApiKeyExchanger | None = getattr(request.app.state, "api_key_exchanger", None)
    if exchanger is not None:
        key = _api_key_from(request, credentials)
        if key is not None:
            grant = await exchanger.exchange(key)
            request.state.access_token = grant.access_token
            return grant.principal
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise UnauthorizedError("Missing bearer token.")
    verifier: TokenVerifier = request.app.state.token_verifier
    principal = await verifier.verify(credentials.credentials)
    request.state.access_token = credentials.credentials
    return principal


def forwarded_authorization(request: Request) -> str | None:
    """The ``Authorization`` header to call another service as the current caller (an API key
    is replaced by the access token it was exchanged for)."""
    token: str | None = getattr(request.state, "access_token", None)
    if token:
        return f"Bearer {token}"
    return request.headers.get("authorization")


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_role(
    minimum: str, *, scope: str | None = None
) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency factory: the caller must hold ``minimum`` or a higher role (and, when the
    caller is an API key and ``scope`` is given, that scope)."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has_role(minimum):
            raise ForbiddenError(f"This action needs the {minimum} role or higher.")
        if scope is not None and not principal.has_scope(scope):
            raise ForbiddenError(f"This API key lacks the {scope!r} scope.")
        return principal

    return check


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency factory: an API key must hold ``scope`` (users are not limited by scopes)."""

    async def check(principal: PrincipalDep) -> Principal:
        if not principal.has_scope(scope):
            raise ForbiddenError(f"This API key lacks the {scope!r} scope.")
        return principal

    return check
