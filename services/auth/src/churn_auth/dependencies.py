"""FastAPI dependencies of the auth service (``Annotated`` aliases)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request

from churn_auth.config import Settings
from churn_auth.passwords import PasswordHasher
from churn_auth.rate_limits import LoginThrottle, client_address
from churn_auth.service import (
    ApiKeyService,
    AuthService,
    SigningKeyCache,
    SigningKeyService,
    TokenPolicy,
    UserService,
)
from churn_shared.runtime import ProcessState
from churn_shared.unit_of_work import SessionDep


class AuthState(ProcessState):
    """``app.state`` of the auth service."""

    settings: Settings
    signing_keys: SigningKeyCache
    password_hasher: PasswordHasher
    login_throttle: LoginThrottle


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_key_cache(request: Request) -> SigningKeyCache:
    keys: SigningKeyCache = request.app.state.signing_keys
    return keys


KeyCacheDep = Annotated[SigningKeyCache, Depends(get_key_cache)]


def get_client_address(request: Request, settings: SettingsDep) -> str:
    """The caller's address; ``X-Forwarded-For`` counts only from a trusted proxy (gateway)."""
    peer = request.client.host if request.client else None
    return client_address(
        peer, request.headers.getlist("x-forwarded-for"), settings.trusted_proxy_networks()
    )


ClientAddressDep = Annotated[str, Depends(get_client_address)]


def get_policy(settings: SettingsDep) -> TokenPolicy:
    return TokenPolicy(
        issuer=settings.token_issuer,
        audience=settings.token_audience,
        access_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        refresh_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
        api_key_ttl=timedelta(seconds=settings.api_key_token_ttl_seconds),
        refresh_grace=timedelta(seconds=settings.refresh_token_reuse_grace_seconds),
        lockout_threshold=settings.lockout_threshold,
        lockout_base_seconds=settings.lockout_base_seconds,
        lockout_max_seconds=settings.lockout_max_seconds,
    )


PolicyDep = Annotated[TokenPolicy, Depends(get_policy)]


def get_password_hasher(request: Request) -> PasswordHasher:
    passwords: PasswordHasher = request.app.state.password_hasher
    return passwords


PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


def get_auth_service(
    session: SessionDep,
    keys: KeyCacheDep,
    passwords: PasswordHasherDep,
    policy: PolicyDep,
    request: Request,
) -> AuthService:
    throttle: LoginThrottle = request.app.state.login_throttle
    return AuthService(session, keys=keys, passwords=passwords, policy=policy, throttle=throttle)


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]


def get_user_service(
    session: SessionDep, passwords: PasswordHasherDep, policy: PolicyDep, request: Request
) -> UserService:
    throttle: LoginThrottle = request.app.state.login_throttle
    return UserService(session, passwords, policy=policy, throttle=throttle)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


def get_api_key_service(session: SessionDep, keys: KeyCacheDep, policy: PolicyDep) -> ApiKeyService:
    return ApiKeyService(session, keys=keys, policy=policy)


ApiKeyServiceDep = Annotated[ApiKeyService, Depends(get_api_key_service)]


def get_signing_key_service(session: SessionDep, keys: KeyCacheDep) -> SigningKeyService:
    return SigningKeyService(session, keys=keys)


SigningKeyServiceDep = Annotated[SigningKeyService, Depends(get_signing_key_service)]
