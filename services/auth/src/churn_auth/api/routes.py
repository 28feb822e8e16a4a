"""Routes parse, call one service method, and return."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response, status

from churn_auth.dependencies import (
    ApiKeyServiceDep,
    AuthServiceDep,
    ClientAddressDep,
    KeyCacheDep,
    SigningKeyServiceDep,
    UserServiceDep,
)
from churn_auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyVerified,
    ApiKeyVerifyRequest,
    JwksRead,
    KeyRotated,
    LoginRequest,
    LogoutRequest,
    PasswordChange,
    ProfileUpdate,
    RefreshRequest,
    RegistrationCreate,
    RegistrationRead,
    TenantFound,
    TenantUserRead,
    TokenPairRead,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from churn_shared.errors import PROBLEM_RESPONSES
from churn_shared.security import PrincipalDep, require_role

JWKS_CACHE_CONTROL = "public, max-age=60"

auth_router = APIRouter(prefix="/v1/auth", tags=["auth"])
users_router = APIRouter(prefix="/v1/users", tags=["users"])
# The token's role is checked first (403 before the body is even validated); the service then
# checks the role stored now, and the finer rules of docs/permissions.md.
_ADMIN = [Depends(require_role("admin"))]
_OWNER = [Depends(require_role("owner"))]
api_keys_router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"], dependencies=_ADMIN)

_EXTRA_PROBLEMS: dict[int, str] = {
    409: "Conflict",
    429: "Too many attempts (Retry-After says how long to wait)",
}


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code in PROBLEM_RESPONSES:
            out[code] = PROBLEM_RESPONSES[code]
        else:
            out[code] = {**PROBLEM_RESPONSES[400], "description": _EXTRA_PROBLEMS[code]}
    return out


@auth_router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    operation_id="auth_register",
    responses=_problems(400, 409, 422),
)
async def register(body: RegistrationCreate, service: AuthServiceDep) -> RegistrationRead:
    """Create a tenant and its owner (the first user of a tenant is always its owner)."""
    return await service.register(body)


@auth_router.post("/login", operation_id="auth_login", responses=_problems(400, 401, 422, 429))
async def login(
    body: LoginRequest, service: AuthServiceDep, client: ClientAddressDep
) -> TokenPairRead:
    """Exchange e-mail and password for an access token and a refresh token.

    Throttled per address and per account; repeated failures lock the account (429).
    """
    return await service.login(body, client)


@auth_router.post("/refresh", operation_id="auth_refresh", responses=_problems(400, 401, 422, 429))
async def refresh(
    body: RefreshRequest, service: AuthServiceDep, client: ClientAddressDep
) -> TokenPairRead:
    """Rotate a refresh token. Presented again within the grace window (10 s by default:
    concurrent refreshes), a rotated token answers the same new pair; later, it revokes its
    whole family."""
    return await service.refresh(body.refresh_token, client)


@auth_router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="auth_logout",
    responses=_problems(400, 422),
)
async def logout(body: LogoutRequest, service: AuthServiceDep) -> Response:
    """Revoke the refresh token's family (every token of that login session)."""
    await service.logout(body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.get("/.well-known/jwks.json", operation_id="auth_jwks")
async def jwks(keys: KeyCacheDep, response: Response) -> JwksRead:
    """The public keys that verify access tokens (current and still-valid previous keys)."""
    response.headers["Cache-Control"] = JWKS_CACHE_CONTROL
    return JwksRead.model_validate(await keys.jwks())


@auth_router.post("/keys/rotate", operation_id="auth_rotate_keys", responses=_problems(401, 403))
async def rotate_keys(principal: PrincipalDep, service: SigningKeyServiceDep) -> KeyRotated:
    """Owners only: sign new tokens with a new key; the previous stays published one TTL."""
    return await service.rotate(principal)


@auth_router.post(
    "/api-keys/verify",
    operation_id="auth_verify_api_key",
    responses=_problems(400, 401, 422),
)
async def verify_api_key(body: ApiKeyVerifyRequest, service: ApiKeyServiceDep) -> ApiKeyVerified:
    """Internal (the gateway does not expose it): an API key's tenant, scopes and a
    short-lived access token (``sub`` = ``apikey:<id>``, claim ``scp``)."""
    return await service.verify(body.key)


@auth_router.get(
    "/tenants/{tenant_id}", operation_id="auth_get_tenant", responses=_problems(404, 422)
)
async def get_tenant(
    tenant_id: Annotated[str, Path(min_length=1, max_length=64)], service: AuthServiceDep
) -> TenantFound:
    """Internal (the gateway does not expose it): whether a tenant exists; the customers
    service asks before it applies an event consumed from Kafka."""
    return await service.get_tenant(tenant_id)


@users_router.get("/me", operation_id="users_me", responses=_problems(401, 403))
async def me(principal: PrincipalDep, service: UserServiceDep) -> UserRead:
    """The caller's profile and tenant."""
    return await service.get_me(principal)


@users_router.patch(
    "/me", operation_id="users_update_me", responses=_problems(400, 401, 403, 409, 422, 429)
)
async def update_me(
    body: ProfileUpdate, principal: PrincipalDep, service: UserServiceDep, client: ClientAddressDep
) -> UserRead:
    """Change the caller's own e-mail address; ``current_password`` is required (403 when it
    is wrong; wrong passwords are throttled like failed sign-ins)."""
    return await service.update_me(principal, body, client)


@users_router.post(
    "/me/password",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="users_change_password",
    responses=_problems(400, 401, 403, 422, 429),
)
async def change_password(
    body: PasswordChange, principal: PrincipalDep, service: UserServiceDep, client: ClientAddressDep
) -> Response:
    """Change the password (old one required, throttled like sign-ins); every other session's
    refresh tokens die."""
    await service.change_password(principal, body, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="users_create",
    dependencies=_ADMIN,
    responses=_problems(400, 401, 403, 409, 422),
)
async def create_user(
    body: UserCreate, principal: PrincipalDep, service: UserServiceDep
) -> TenantUserRead:
    """Owners and admins create a user in their tenant (admins: analysts and viewers only)."""
    return await service.create_user(principal, body)


@users_router.get(
    "", operation_id="users_list", dependencies=_ADMIN, responses=_problems(400, 401, 403, 422)
)
async def list_users(
    principal: PrincipalDep,
    service: UserServiceDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPage:
    """The tenant's users, oldest first (admins and owners)."""
    return await service.list_users(principal, limit=limit, cursor=cursor)


@users_router.patch(
    "/{user_id}",
    operation_id="users_update",
    dependencies=_ADMIN,
    responses=_problems(400, 401, 403, 404, 409, 422),
)
async def update_user(
    user_id: Annotated[str, Path(max_length=64)],
    body: UserUpdate,
    principal: PrincipalDep,
    service: UserServiceDep,
) -> TenantUserRead:
    """Change another user's role or deactivate/reactivate them (rules: docs/permissions.md)."""
    return await service.update_user(principal, user_id, body)


@api_keys_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="api_keys_create",
    responses=_problems(400, 401, 403, 422),
)
async def create_api_key(
    body: ApiKeyCreate, principal: PrincipalDep, service: ApiKeyServiceDep
) -> ApiKeyCreated:
    """Admins create an API key; the returned ``key`` is shown only once."""
    return await service.create(principal, body)


@api_keys_router.get("", operation_id="api_keys_list", responses=_problems(401, 403))
async def list_api_keys(principal: PrincipalDep, service: ApiKeyServiceDep) -> ApiKeyList:
    """The tenant's live API keys (never their secrets)."""
    return await service.list(principal)


@api_keys_router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="api_keys_revoke",
    responses=_problems(401, 403, 404),
)
async def revoke_api_key(
    key_id: Annotated[str, Path(max_length=64)], principal: PrincipalDep, service: ApiKeyServiceDep
) -> Response:
    """Revoke an API key at once."""
    await service.revoke(principal, key_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
