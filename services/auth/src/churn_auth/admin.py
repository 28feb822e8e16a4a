"""Operator tasks run outside the API process (``churn auth rotate-keys``)."""

from __future__ import annotations

from pathlib import Path

from churn_auth.config import Settings
from churn_auth.schemas import KeyRotated
from churn_auth.service import rotate_signing_key
from churn_shared.db import (
    create_engine,
    create_session_factory,
    run_migrations,
    unit_of_work,
    utcnow,
)

#: Same as ``churn_auth.main.MIGRATIONS`` (not imported: the CLI need not build the web app).
MIGRATIONS = str(Path(__file__).resolve().parent / "migrations")


async def rotate_keys(settings: Settings | None = None) -> KeyRotated:
    """Add a new signing key to the auth database and retire the previous one.

    Running replicas pick the new key up within ``signing_key_cache_seconds`` (they reload
    before signing); the retired key stays in the JWKS for one access-token lifetime.
    """
    settings = settings or Settings()
    engine = create_engine(settings.database_url.get_secret_value())
    try:
        if settings.auto_migrate:
            await run_migrations(engine, MIGRATIONS)
        async with unit_of_work(create_session_factory(engine)) as session:
            return await rotate_signing_key(
                session, utcnow(), settings.signing_key_passphrase_bytes()
            )
    finally:
        await engine.dispose()
