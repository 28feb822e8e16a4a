"""Domain errors of the auth service; each carries its HTTP status (problem+json)."""

from __future__ import annotations

from typing import Any

from churn_shared.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    TooManyRequestsError,
    UnauthorizedError,
)


class EmailAlreadyRegisteredError(ConflictError):
    type_slug = "email-already-registered"

    def __init__(self) -> None:
        super().__init__("An account with this e-mail address already exists.")


class InvalidCredentialsError(UnauthorizedError):
    """The same answer for an unknown e-mail, a wrong password and a deactivated user."""

    type_slug = "invalid-credentials"
    #: The failed-login counter (and a lock) must survive the error.
    keeps_changes = True

    def __init__(self) -> None:
        super().__init__("The e-mail address or password is incorrect.")


class InvalidRefreshTokenError(UnauthorizedError):
    type_slug = "invalid-refresh-token"

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired or revoked.")


class RefreshTokenReusedError(InvalidRefreshTokenError):
    """A rotated refresh token came back: its whole family has been revoked (RFC 9700).

    The revocation must survive the error, so the request's unit of work commits it.
    """

    keeps_changes = True


class TenantNotFoundError(NotFoundError):
    def __init__(self) -> None:
        super().__init__("The tenant does not exist.")


class UserNotFoundError(NotFoundError):
    def __init__(self) -> None:
        super().__init__("The user does not exist.")


class RateLimitedError(TooManyRequestsError):
    """Too many attempts; carries how long to wait (``Retry-After``, seconds)."""

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = max(1, int(retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class LoginLockedError(RateLimitedError):
    """Repeated failures; the same answer whether or not the account exists.

    The failure that triggers the lock is counted, so the unit of work keeps its changes.
    """

    type_slug = "login-locked"
    keeps_changes = True

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many failed sign-in attempts for this account; try again later.",
            retry_after=retry_after,
        )


class InactiveUserError(UnauthorizedError):
    type_slug = "invalid-token"

    def __init__(self) -> None:
        super().__init__("The token's user is deactivated or the token has been revoked.")


class RoleNotAllowedError(ForbiddenError):
    type_slug = "role-not-allowed"


class LastOwnerError(ConflictError):
    type_slug = "last-owner"

    def __init__(self) -> None:
        super().__init__("The tenant's last active owner cannot be demoted or deactivated.")


class WrongPasswordError(ForbiddenError):
    type_slug = "wrong-password"

    def __init__(self) -> None:
        super().__init__("The current password is incorrect.")


class ApiKeyNotFoundError(NotFoundError):
    def __init__(self) -> None:
        super().__init__("The API key does not exist.")


class InvalidApiKeyError(UnauthorizedError):
    type_slug = "invalid-api-key"

    def __init__(self) -> None:
        super().__init__("The API key is invalid or revoked.")
