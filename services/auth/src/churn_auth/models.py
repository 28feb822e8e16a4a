"""Tables of the auth service, on its own SQLModel registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from churn_shared.db import UTCDateTime, utcnow


class Base(SQLModel, registry=registry()):
    pass


class Tenant(Base, table=True):
    """A business using the platform; every other record belongs to one."""

    __tablename__ = "tenants"

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class User(Base, table=True):
    """A person who logs in; the e-mail (stored lowercased) is unique across tenants."""

    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=16)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    #: Consecutive failed logins; reset by a successful one.
    failed_logins: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    #: Logins are refused until then (a growing delay after repeated failures).
    locked_until: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    #: Access tokens issued before this instant are refused by the auth service.
    tokens_valid_after: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class SigningKey(Base, table=True):
    """An Ed25519 key pair; the newest key that is not retired signs new access tokens."""

    __tablename__ = "signing_keys"

    kid: str = Field(primary_key=True, max_length=64)
    private_key_pem: str = Field(sa_type=sa.Text, nullable=False)
    public_jwk: dict[str, Any] = Field(sa_type=sa.JSON, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)


class RefreshToken(Base, table=True):
    """One opaque refresh token (only its SHA-256 is stored), part of a rotation family."""

    __tablename__ = "refresh_tokens"

    id: str = Field(primary_key=True, max_length=36)
    token_hash: str = Field(max_length=64, unique=True)
    family_id: str = Field(index=True, max_length=36)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=36)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    #: The pair this token was rotated into, sealed with a key derived from this token (only
    #: whoever presents it can open it): replayed within the grace window, it answers the same
    #: pair. Cleared once the grace window is over.
    successor_sealed: str | None = Field(default=None, sa_type=sa.Text, nullable=True)


class ApiKey(Base, table=True):
    """An integrator's key (``ck_<id>_<secret>``); only the SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=32)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=36)
    name: str = Field(max_length=200)
    scopes: list[str] = Field(sa_type=sa.JSON, nullable=False)
    secret_hash: str = Field(max_length=64)
    created_by: str = Field(max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime, nullable=True)
