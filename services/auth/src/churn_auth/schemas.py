"""Request and response bodies of the auth service."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)

from churn_auth.passwords import MIN_PASSWORD_LENGTH, password_problem
from churn_shared.fields import StrictBool

Role = Literal["owner", "admin", "analyst", "viewer"]
Scope = Literal["events:write", "predictions", "read"]


def _acceptable_password(value: str) -> str:
    problem = password_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


TenantName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
NewPassword = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=256,
        description=f"At least {MIN_PASSWORD_LENGTH} characters and 3 distinct ones, and not on "
        "the server's list of common passwords (422 says which rule failed).",
    ),
    AfterValidator(_acceptable_password),
]


class RegistrationCreate(BaseModel):
    """A new tenant and its owner."""

    model_config = ConfigDict(extra="forbid")

    tenant_name: TenantName
    email: EmailStr
    password: NewPassword


class RegistrationRead(BaseModel):
    tenant_id: str
    user_id: str
    email: str
    role: Literal["owner"]


class LoginRequest(BaseModel):
    # Plain strings (not EmailStr): any unknown or malformed e-mail gets the same 401.
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class LogoutRequest(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=512)]


class TokenPairRead(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type
    #: Seconds until the access token expires.
    expires_in: int


class UserRead(BaseModel):
    id: str
    email: str
    role: str
    tenant_id: str
    tenant_name: str
    created_at: datetime


class UserCreate(BaseModel):
    """A user created by an owner or admin in the caller's tenant."""

    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    password: NewPassword
    role: Role


class UserUpdate(BaseModel):
    """Role and/or activation of another user of the tenant."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    active: StrictBool | None = None


class ProfileUpdate(BaseModel):
    """The caller's own profile. Changing the e-mail address (the login name) needs the
    current password, like changing the password does."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # What ``_password_confirms_email`` enforces, declared for generated clients.
            "if": {"required": ["email"], "properties": {"email": {"type": "string"}}},
            "then": {
                "required": ["current_password"],
                "properties": {"current_password": {"type": "string"}},
            },
        },
    )

    email: EmailStr | None = None
    #: Required with ``email``.
    current_password: Annotated[str | None, Field(min_length=1, max_length=256)] = None

    @model_validator(mode="after")
    def _password_confirms_email(self) -> ProfileUpdate:
        if self.email is not None and not self.current_password:
            raise ValueError("current_password is required to change the e-mail address")
        return self


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: NewPassword
    #: The caller's own refresh token: its session survives, every other one is revoked.
    keep_refresh_token: Annotated[str | None, Field(default=None, max_length=512)] = None


class TenantUserRead(BaseModel):
    """A user as listed to the tenant's admins."""

    id: str
    email: str
    role: str
    active: bool
    created_at: datetime
    locked_until: datetime | None = None


class UserPage(BaseModel):
    items: list[TenantUserRead]
    next_cursor: str | None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)]


class ApiKeyRead(BaseModel):
    id: str
    name: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyRead):
    #: The whole key (``ck_<id>_<secret>``); shown only in this response.
    key: str


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]


class ApiKeyVerifyRequest(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=256)]


class ApiKeyVerified(BaseModel):
    key_id: str
    tenant_id: str
    scopes: list[str]
    name: str
    #: A short-lived access token for the key's tenant (``sub`` = ``apikey:<id>``, claim ``scp``).
    access_token: str
    expires_in: int


class TenantFound(BaseModel):
    """Internal: a tenant that exists (the customers service checks the tenant of every event
    it consumes from Kafka)."""

    id: str
    created_at: datetime


class KeyRotated(BaseModel):
    kid: str
    previous_kids: list[str]


class JsonWebKey(BaseModel):
    model_config = ConfigDict(extra="allow")

    kty: str
    kid: str
    alg: str | None = None
    use: str | None = None
    crv: str | None = None
    x: str | None = None


class JwksRead(BaseModel):
    keys: list[JsonWebKey]
