"""In-memory fakes of the auth repositories, and a user service built on them: the fast layer
(no database, no broker)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pytest

from churn_auth.models import RefreshToken, User
from churn_auth.service import TokenPolicy, UserService
from churn_shared.db import utcnow
from testkit import FakeUnitOfWork


class FakeUserRepository:
    def __init__(self) -> None:
        self.rows: dict[str, User] = {}
        self.saved: list[str] = []
        #: Called as the owners are locked: what another transaction committed just before.
        self.before_lock: Callable[[], None] | None = None

    async def add(self, user: User) -> User:
        self.rows[user.id] = user
        return user

    async def save(self, user: User) -> User:
        self.rows[user.id] = user
        self.saved.append(user.id)
        return user

    async def email_exists(self, email: str) -> bool:
        return any(u.email == email for u in self.rows.values())

    async def get_in_tenant(self, tenant_id: str, user_id: str) -> User | None:
        user = self.rows.get(user_id)
        return user if user is not None and user.tenant_id == tenant_id else None

    async def lock_active_owners(self, tenant_id: str) -> Sequence[str]:
        if self.before_lock is not None:
            self.before_lock()
        return [
            u.id
            for u in self.rows.values()
            if u.tenant_id == tenant_id and u.role == "owner" and u.active
        ]


class FakeRefreshTokenRepository:
    def __init__(self) -> None:
        self.rows: list[RefreshToken] = []

    async def revoke_user(
        self, tenant_id: str, user_id: str, now: datetime, *, except_family: str | None = None
    ) -> int:
        revoked = 0
        for token in self.rows:
            if (
                token.tenant_id == tenant_id
                and token.user_id == user_id
                and token.revoked_at is None
                and token.family_id != except_family
            ):
                token.revoked_at = now
                revoked += 1
        return revoked


class FakePasswordHasher:
    async def hash(self, password: str) -> str:
        return f"plain:{password}"

    async def verify(self, password: str, hashed: str) -> bool:
        return hashed == f"plain:{password}"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(users=FakeUserRepository(), refresh_tokens=FakeRefreshTokenRepository())


@pytest.fixture
def user_service(uow: FakeUnitOfWork) -> UserService:
    policy = TokenPolicy(
        issuer="churn-auth",
        audience="churn-platform",
        access_ttl=timedelta(minutes=15),
        refresh_ttl=timedelta(days=1),
    )
    return UserService(
        uow.session,
        FakePasswordHasher(),
        policy=policy,
        throttle=None,  # only re-confirming a password uses it
        users=uow.users,
        refresh_tokens=uow.refresh_tokens,
    )


@pytest.fixture
def add_user(uow: FakeUnitOfWork) -> Callable[..., User]:
    """Store a user of ``tenant`` with ``role`` in the fake repository; returns it."""

    def add(role: str, tenant: str = "t-1", *, active: bool = True) -> User:
        user = User(
            id=str(uuid.uuid4()),
            tenant_id=tenant,
            email=f"{uuid.uuid4().hex[:8]}@example.com",
            password_hash="plain:secret",
            role=role,
            active=active,
            created_at=utcnow(),
        )
        uow.users.rows[user.id] = user
        return user

    return add


@pytest.fixture
def live_token(uow: FakeUnitOfWork) -> Callable[[User], RefreshToken]:
    def issue(user: User) -> RefreshToken:
        token = RefreshToken(
            id=str(uuid.uuid4()),
            tenant_id=user.tenant_id,
            user_id=user.id,
            family_id=str(uuid.uuid4()),
            token_hash=uuid.uuid4().hex,
            expires_at=utcnow() + timedelta(days=1),
            created_at=utcnow(),
        )
        uow.refresh_tokens.rows.append(token)
        return token

    return issue
