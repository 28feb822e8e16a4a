"""The auth service's process: ``create_app(settings)``; ``app_from_env()`` for uvicorn --factory.

Auth has a database and no broker (it publishes and consumes no events). Its own resources are
the signing-key ring, the password hasher and the login throttle; it verifies the tokens it
issues against its own key ring instead of fetching the JWKS over HTTP.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from churn_auth.api.routes import api_keys_router, auth_router, users_router
from churn_auth.config import Settings
from churn_auth.dependencies import AuthState
from churn_auth.passwords import PasswordHasher
from churn_auth.rate_limits import LoginThrottle
from churn_auth.service import SigningKeyCache
from churn_shared.logging import get_logger
from churn_shared.runtime import ServiceRuntime
from churn_shared.security import TokenVerifier

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
_log = get_logger(__name__)


async def _open(state: AuthState, stack: AsyncExitStack) -> None:
    settings = state.settings
    signing_keys = SigningKeyCache(
        state.session_factory,
        access_token_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
        max_age=settings.signing_key_cache_seconds,
        jwks_max_age=settings.jwks_cache_seconds,
        passphrase=settings.signing_key_passphrase_bytes(),
    )
    if settings.signing_key_passphrase_bytes() is None and not settings.dev_mode:
        _log.warning(
            "signing_keys_unencrypted",
            hint="set CHURN_AUTH_SIGNING_KEY_PASSPHRASE to encrypt them at rest",
        )
    key_ring = await signing_keys.reload()
    passwords = PasswordHasher(settings.password_hash_concurrency)
    await passwords.warm_up()
    throttle = LoginThrottle.from_settings(settings)
    stack.push_async_callback(throttle.close)
    state.signing_keys = signing_keys
    state.password_hasher = passwords
    state.login_throttle = throttle
    if not hasattr(state, "token_verifier"):
        state.token_verifier = TokenVerifier(
            signing_keys.jwks_source,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
        )
    _log.info("auth_started", kid=key_ring.kid)


async def _signing_key_ready(state: AuthState) -> None:
    if not hasattr(state, "signing_keys") or state.signing_keys.ring is None:
        raise RuntimeError("no signing key loaded")


RUNTIME = ServiceRuntime(
    client_id="churn-auth",
    migrations=MIGRATIONS,
    setup=_open,
    checks={"signing_key": _signing_key_ready},
    verify_tokens=False,
)


def create_app(
    settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None
) -> FastAPI:
    """Build the auth app; the runtime opens its database, key ring and password hasher."""
    settings = settings or Settings()
    return RUNTIME.create_app(
        AuthState(settings),
        title="churn auth",
        description="Tenants, users, access and refresh tokens, and the JWKS.",
        routers=(auth_router, users_router, api_keys_router),
        token_verifier=token_verifier,
    )


def app_from_env() -> FastAPI:
    """``uvicorn --factory churn_auth.main:app_from_env``."""
    return create_app(Settings())
