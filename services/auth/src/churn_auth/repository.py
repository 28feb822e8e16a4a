"""All SQL of the auth service. Repositories add, flush and query; they never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_auth.models import ApiKey, RefreshToken, SigningKey, Tenant, User


class TenantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, tenant: Tenant) -> Tenant:
        self.session.add(tenant)
        await self.session.flush()
        return tenant

    async def get(self, tenant_id: str) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, user: User) -> User:
        """Insert a user; raises ``sqlalchemy.exc.IntegrityError`` if the e-mail is taken."""
        self.session.add(user)
        await self.session.flush()
        return user

    async def save(self, user: User) -> User:
        """Write a changed user; raises ``sqlalchemy.exc.IntegrityError`` if its new e-mail is
        taken."""
        self.session.add(user)
        await self.session.flush()
        return user

    async def email_exists(self, email: str) -> bool:
        result = await self.session.exec(select(User.id).where(User.email == email))
        return result.first() is not None

    async def get_by_email(self, email: str) -> User | None:
        """Login looks a user up by e-mail alone: e-mails are unique across tenants."""
        result = await self.session.exec(select(User).where(User.email == email))
        return result.first()

    async def get_in_tenant(self, tenant_id: str, user_id: str) -> User | None:
        result = await self.session.exec(
            select(User).where(User.tenant_id == tenant_id, User.id == user_id)
        )
        return result.first()

    async def get_with_tenant(self, tenant_id: str, user_id: str) -> tuple[User, Tenant] | None:
        result = await self.session.exec(
            select(User, Tenant)
            .join(Tenant, col(Tenant.id) == col(User.tenant_id))
            .where(User.tenant_id == tenant_id, User.id == user_id)
        )
        row = result.first()
        return None if row is None else (row[0], row[1])

    async def list_page(
        self, tenant_id: str, *, limit: int, after: tuple[datetime, str] | None
    ) -> Sequence[User]:
        """Users of one tenant in (created_at, id) order, after the keyset position."""
        query = select(User).where(User.tenant_id == tenant_id)
        if after is not None:
            created_at, user_id = after
            query = query.where(
                sa.or_(
                    col(User.created_at) > created_at,
                    sa.and_(col(User.created_at) == created_at, col(User.id) > user_id),
                )
            )
        result = await self.session.exec(
            query.order_by(col(User.created_at), col(User.id)).limit(limit)
        )
        return result.all()

    async def lock_active_owners(self, tenant_id: str) -> Sequence[str]:
        """Ids of the tenant's active owners, rows locked (FOR UPDATE) until the commit."""
        result = await self.session.exec(
            select(User.id)
            .where(User.tenant_id == tenant_id, User.role == "owner", col(User.active).is_(True))
            .with_for_update()
        )
        return result.all()

    async def record_failed_login(self, tenant_id: str, user_id: str) -> int:
        """Atomically count one more failed login; the new count."""
        await self.session.exec(
            sa.update(User)
            .where(col(User.tenant_id) == tenant_id, col(User.id) == user_id)
            .values(failed_logins=col(User.failed_logins) + 1)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.exec(
            select(User.failed_logins).where(User.tenant_id == tenant_id, User.id == user_id)
        )
        return int(result.one())

    async def set_lock(self, tenant_id: str, user_id: str, locked_until: datetime | None) -> None:
        values: dict[str, object] = {"locked_until": locked_until}
        if locked_until is None:
            values["failed_logins"] = 0
        await self.session.exec(
            sa.update(User)
            .where(col(User.tenant_id) == tenant_id, col(User.id) == user_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


class SigningKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: SigningKey) -> SigningKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def list_published(self, retired_after: datetime) -> Sequence[SigningKey]:
        """Keys not retired, or retired after ``retired_after``; newest first."""
        result = await self.session.exec(
            select(SigningKey)
            .where(
                sa.or_(
                    col(SigningKey.retired_at).is_(None),
                    col(SigningKey.retired_at) > retired_after,
                )
            )
            .order_by(col(SigningKey.created_at).desc(), col(SigningKey.kid))
        )
        return result.all()

    async def retire_all_except(self, kid: str, now: datetime) -> Sequence[str]:
        """Retire every unretired key but ``kid``; the kids retired."""
        result = await self.session.exec(
            select(SigningKey.kid).where(
                col(SigningKey.retired_at).is_(None), col(SigningKey.kid) != kid
            )
        )
        kids = list(result.all())
        if kids:
            await self.session.exec(
                sa.update(SigningKey)
                .where(col(SigningKey.kid).in_(kids))
                .values(retired_at=now)
                .execution_options(synchronize_session=False)
            )
        return kids


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def get(self, key_id: str) -> ApiKey | None:
        """By id alone: verification learns the tenant from the key."""
        return await self.session.get(ApiKey, key_id)

    async def list_active(self, tenant_id: str) -> Sequence[ApiKey]:
        result = await self.session.exec(
            select(ApiKey)
            .where(ApiKey.tenant_id == tenant_id, col(ApiKey.revoked_at).is_(None))
            .order_by(col(ApiKey.created_at), col(ApiKey.id))
        )
        return result.all()

    async def revoke(self, tenant_id: str, key_id: str, now: datetime) -> bool:
        result = await self.session.exec(
            sa.update(ApiKey)
            .where(
                col(ApiKey.tenant_id) == tenant_id,
                col(ApiKey.id) == key_id,
                col(ApiKey.revoked_at).is_(None),
            )
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount) == 1

    async def touch(self, key_id: str, now: datetime) -> None:
        await self.session.exec(
            sa.update(ApiKey)
            .where(col(ApiKey.id) == key_id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )


class RefreshTokenRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, token: RefreshToken) -> RefreshToken:
        self.session.add(token)
        await self.session.flush()
        return token

    async def get_by_hash(
        self, token_hash: str, *, for_update: bool = False
    ) -> RefreshToken | None:
        """The token with this hash; ``for_update`` reads the latest committed row and locks it
        (after losing a race, the winner's changes are what counts)."""
        query = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        if for_update:
            query = query.with_for_update().execution_options(populate_existing=True)
        result = await self.session.exec(query)
        return result.first()

    async def mark_used(self, tenant_id: str, token_id: str, now: datetime) -> bool:
        """Mark a token used if it is still unused and unrevoked; False if another request won.

        The conditional UPDATE makes rotation safe against two concurrent refreshes with the
        same token on every backend: only one of them sees a changed row.
        """
        result = await self.session.exec(
            sa.update(RefreshToken)
            .where(
                col(RefreshToken.tenant_id) == tenant_id,
                col(RefreshToken.id) == token_id,
                col(RefreshToken.used_at).is_(None),
                col(RefreshToken.revoked_at).is_(None),
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount) == 1

    async def set_successor(self, tenant_id: str, token_id: str, sealed: str) -> None:
        """Record (sealed) the pair a token was rotated into."""
        await self.session.exec(
            sa.update(RefreshToken)
            .where(col(RefreshToken.tenant_id) == tenant_id, col(RefreshToken.id) == token_id)
            .values(successor_sealed=sealed)
            .execution_options(synchronize_session=False)
        )

    async def forget_successors(
        self, tenant_id: str, family_id: str, used_before: datetime
    ) -> None:
        """Drop the sealed successors of the family's tokens rotated before ``used_before``."""
        await self.session.exec(
            sa.update(RefreshToken)
            .where(
                col(RefreshToken.tenant_id) == tenant_id,
                col(RefreshToken.family_id) == family_id,
                col(RefreshToken.used_at) < used_before,
                col(RefreshToken.successor_sealed).is_not(None),
            )
            .values(successor_sealed=None)
            .execution_options(synchronize_session=False)
        )

    async def revoke_family(self, tenant_id: str, family_id: str, now: datetime) -> int:
        result = await self.session.exec(
            sa.update(RefreshToken)
            .where(
                col(RefreshToken.tenant_id) == tenant_id,
                col(RefreshToken.family_id) == family_id,
                col(RefreshToken.revoked_at).is_(None),
            )
            .values(revoked_at=now, successor_sealed=None)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)

    async def revoke_user(
        self, tenant_id: str, user_id: str, now: datetime, *, except_family: str | None = None
    ) -> int:
        """Revoke every live refresh token of a user (optionally sparing one family)."""
        query = sa.update(RefreshToken).where(
            col(RefreshToken.tenant_id) == tenant_id,
            col(RefreshToken.user_id) == user_id,
            col(RefreshToken.revoked_at).is_(None),
        )
        if except_family is not None:
            query = query.where(col(RefreshToken.family_id) != except_family)
        result = await self.session.exec(
            query.values(revoked_at=now, successor_sealed=None).execution_options(
                synchronize_session=False
            )
        )
        return int(result.rowcount)
