"""The auth service's app: ``create_app(settings)``; ``app_from_env()`` for uvicorn --factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.responses import Response

from churn_auth.api.routes import api_keys_router, auth_router, users_router
from churn_auth.config import Settings
from churn_auth.exceptions import RateLimitedError
from churn_auth.passwords import PasswordHasher
from churn_auth.rate_limits import LoginThrottle
from churn_auth.service import SigningKeyCache
from churn_shared.app import make_service_app
from churn_shared.db import (
    create_engine,
    create_session_factory,
    ping,
    run_migrations,
)
from churn_shared.errors import problem_response
from churn_shared.logging import configure_logging, get_logger
from churn_shared.security import TokenVerifier

MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")
_log = get_logger(__name__)


def _version() -> str:
    try:
        return version("churn-auth")
    except PackageNotFoundError:
        return "0.0.0"


async def _database_ready(app: FastAPI) -> None:
    await ping(app.state.engine)


async def _signing_key_ready(app: FastAPI) -> None:
    keys: SigningKeyCache | None = getattr(app.state, "signing_keys", None)
    if keys is None or keys.ring is None:
        raise RuntimeError("no signing key loaded")


async def _on_rate_limited(request: Request, exc: Exception) -> Response:
    """429 problem+json carrying ``Retry-After``."""
    assert isinstance(exc, RateLimitedError)
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        exc.type_slug,
        request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


async def _close_storage(throttle: LoginThrottle) -> None:
    """Close a Redis connection pool of the rate-limit storage, if any."""
    close = getattr(throttle.storage, "close", None)
    if close is None:
        return
    try:
        result = close()
        if hasattr(result, "__await__"):
            await result
    except Exception as exc:  # closing is best effort
        _log.warning("rate_limit_storage_close_failed", error=repr(exc))


def create_app(
    settings: Settings | None = None, *, token_verifier: TokenVerifier | None = None
) -> FastAPI:
    """Build the auth app; its lifespan owns the engine, the key ring and the password hasher."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_json)
        engine = create_engine(settings.database_url.get_secret_value())
        try:
            if settings.auto_migrate:
                await run_migrations(engine, MIGRATIONS)
            session_factory = create_session_factory(engine)
            signing_keys = SigningKeyCache(
                session_factory,
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
            app.state.settings = settings
            app.state.engine = engine
            app.state.session_factory = session_factory
            app.state.signing_keys = signing_keys
            app.state.password_hasher = passwords
            app.state.login_throttle = throttle
            app.state.token_verifier = token_verifier or TokenVerifier(
                signing_keys.jwks_source,
                issuer=settings.token_issuer,
                audience=settings.token_audience,
            )
            # No workers: auth publishes and consumes no events yet (see churn_auth.worker).
            _log.info("auth_started", kid=key_ring.kid)
            yield
        finally:
            throttle_state = getattr(app.state, "login_throttle", None)
            if throttle_state is not None:
                await _close_storage(throttle_state)
            await engine.dispose()

    app = make_service_app(
        title="churn auth",
        service="auth",
        version=_version(),
        lifespan=lifespan,
        readiness={"database": _database_ready, "signing_key": _signing_key_ready},
        max_body_bytes=settings.max_body_bytes,
        description="Tenants, users, access and refresh tokens, and the JWKS.",
    )
    app.add_exception_handler(RateLimitedError, _on_rate_limited)
    app.include_router(auth_router)
    app.include_router(users_router)
    app.include_router(api_keys_router)
    return app


def app_from_env() -> FastAPI:
    """``uvicorn --factory churn_auth.main:app_from_env``."""
    return create_app(Settings())
