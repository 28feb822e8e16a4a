"""Business logic of the auth service. Functions take a session and never commit."""

from __future__ import annotations

import asyncio
import hmac
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from churn_auth.exceptions import (
    ApiKeyNotFoundError,
    EmailAlreadyRegisteredError,
    InactiveUserError,
    InvalidApiKeyError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    LastOwnerError,
    RefreshTokenReusedError,
    RoleNotAllowedError,
    TenantNotFoundError,
    UserNotFoundError,
    WrongPasswordError,
)
from churn_auth.models import ApiKey, RefreshToken, Tenant, User
from churn_auth.passwords import PasswordHasher
from churn_auth.rate_limits import LoginThrottle
from churn_auth.repository import (
    ApiKeyRepository,
    RefreshTokenRepository,
    SigningKeyRepository,
    TenantRepository,
    UserRepository,
)
from churn_auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRead,
    ApiKeyVerified,
    KeyRotated,
    LoginRequest,
    PasswordChange,
    ProfileUpdate,
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
from churn_auth.tokens import (
    KeyRing,
    hash_api_key_secret,
    hash_refresh_token,
    new_api_key,
    new_refresh_token,
    new_signing_key,
    open_successor,
    parse_api_key,
    seal_successor,
)
from churn_shared.db import unit_of_work, utcnow
from churn_shared.errors import BadRequestError, ForbiddenError
from churn_shared.logging import get_logger
from churn_shared.pagination import decode_cursor, encode_cursor
from churn_shared.security import ROLES, Principal

_log = get_logger(__name__)

OWNER_ROLE = "owner"
#: Roles each role may grant (and manage users holding): owners manage everyone, admins
#: manage analysts and viewers only; analysts and viewers manage nobody.
GRANTABLE: dict[str, frozenset[str]] = {
    "owner": frozenset(ROLES),
    "admin": frozenset({"analyst", "viewer"}),
    "analyst": frozenset(),
    "viewer": frozenset(),
}
API_KEY_SUBJECT_PREFIX = "apikey:"
#: ``last_used_at`` of an API key is written at most this often.
API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _rank(role: str) -> int:
    return ROLES.index(role)


async def load_key_ring(
    session: AsyncSession, *, access_token_ttl: timedelta, passphrase: bytes | None = None
) -> KeyRing:
    """The key ring from the database, generating the first Ed25519 key if there is none.

    The newest key that is not retired signs; the JWKS publishes every unretired key plus the
    keys retired less than one access-token lifetime ago (tokens they signed are still valid).
    """
    keys = SigningKeyRepository(session)
    now = utcnow()
    published = await keys.list_published(retired_after=now - access_token_ttl)
    active = [k for k in published if k.retired_at is None]
    if not active:
        created = await keys.add(new_signing_key(now, passphrase))
        _log.info("signing_key_created", kid=created.kid, encrypted=passphrase is not None)
        published = [created, *published]
        active = [created]
    return KeyRing(current=active[0], published=published, passphrase=passphrase)


async def rotate_signing_key(
    session: AsyncSession, now: datetime, passphrase: bytes | None = None
) -> KeyRotated:
    """Add a new signing key and retire the others.

    A retired key stops signing at once but stays in the JWKS for one more access-token
    lifetime, so tokens it signed keep verifying and nobody is logged out.
    """
    keys = SigningKeyRepository(session)
    created = await keys.add(new_signing_key(now, passphrase))
    retired = await keys.retire_all_except(created.kid, now)
    _log.info("signing_key_rotated", kid=created.kid, retired=list(retired))
    return KeyRotated(kid=created.kid, previous_kids=list(retired))


class SigningKeyCache:
    """The key ring, reloaded from the database when stale (other replicas, the CLI rotate keys).

    Signing reloads a ring older than ``max_age`` seconds; the JWKS reloads one older than
    ``jwks_max_age`` so verifiers learn a new ``kid`` quickly.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        *,
        access_token_ttl: timedelta,
        max_age: float = 30.0,
        jwks_max_age: float = 5.0,
        passphrase: bytes | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._passphrase = passphrase
        self._access_token_ttl = access_token_ttl
        self._max_age = max_age
        self._jwks_max_age = jwks_max_age
        self._ring: KeyRing | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def ring(self) -> KeyRing | None:
        return self._ring

    async def reload(self) -> KeyRing:
        async with self._lock:
            async with unit_of_work(self._session_factory) as session:
                ring = await load_key_ring(
                    session, access_token_ttl=self._access_token_ttl, passphrase=self._passphrase
                )
            self._ring = ring
            self._loaded_at = time.monotonic()
            return ring

    async def _fresh(self, max_age: float) -> KeyRing:
        ring = self._ring
        if ring is None or time.monotonic() - self._loaded_at > max_age:
            return await self.reload()
        return ring

    async def signing_ring(self) -> KeyRing:
        return await self._fresh(self._max_age)

    async def jwks(self) -> dict[str, Any]:
        return (await self._fresh(self._jwks_max_age)).jwks()

    async def jwks_source(self) -> dict[str, Any]:
        """A local ``JwksSource`` for the auth service's own ``TokenVerifier``."""
        return await self.jwks()

    async def rotate(self) -> KeyRotated:
        """Rotate in a transaction of its own, then load the new ring at once."""
        async with unit_of_work(self._session_factory) as session:
            rotated = await rotate_signing_key(session, utcnow(), self._passphrase)
        await self.reload()
        return rotated


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    issuer: str
    audience: str
    access_ttl: timedelta
    refresh_ttl: timedelta
    api_key_ttl: timedelta = timedelta(minutes=5)
    #: How long a just-rotated refresh token still answers the pair it was rotated into
    #: (concurrent refreshes from two tabs); zero makes refresh tokens strictly single-use.
    refresh_grace: timedelta = timedelta(seconds=10)
    lockout_threshold: int = 5
    lockout_base_seconds: int = 30
    lockout_max_seconds: int = 900

    def lock_delay(self, failures: int) -> timedelta | None:
        """How long one account is locked for one client address after ``failures`` consecutive
        failures from that address (docs/login-throttling.md)."""
        if failures < self.lockout_threshold:
            return None
        exponent = min(failures - self.lockout_threshold, 20)
        seconds = min(self.lockout_base_seconds * 2**exponent, self.lockout_max_seconds)
        return timedelta(seconds=seconds)


def tokens_not_before(user: User) -> int | None:
    """The earliest ``iat`` the user's tokens may carry, or ``None`` when any will do.

    ``iat`` is whole seconds (rounded down), so a token issued before ``tokens_valid_after``
    has an ``iat`` below the next whole second; tokens are only issued from that second on
    (:meth:`AuthService._issue_pair` waits for it).
    """
    if user.tokens_valid_after is None:
        return None
    return math.ceil(user.tokens_valid_after.timestamp())


async def resolve_actor(users: UserRepository, principal: Principal) -> User:
    """The calling user, as the database knows them now.

    Refuses API-key tokens (they act for no user), deactivated users, and tokens issued before
    the user's ``tokens_valid_after``. The role that counts is the stored one, not the token's.
    """
    if principal.subject.startswith(API_KEY_SUBJECT_PREFIX):
        raise ForbiddenError("API keys cannot act on users, keys or the tenant.")
    user = await users.get_in_tenant(principal.tenant_id, principal.subject)
    if user is None or not user.active:
        raise InactiveUserError
    not_before = tokens_not_before(user)
    if not_before is not None and (principal.issued_at is None or principal.issued_at < not_before):
        raise InactiveUserError
    return user


async def count_failed_password(
    throttle: LoginThrottle, policy: TokenPolicy, client: str, email: str
) -> None:
    """Count a wrong password for ``email`` from ``client`` (a sign-in or a re-confirmation),
    and lock that pair once the failures reach the policy's threshold."""
    failures = await throttle.record_failure(client, email)
    delay = policy.lock_delay(failures)
    if delay is not None:
        await throttle.lock(client, email, math.ceil(delay.total_seconds()))
        _log.warning("login_locked", client=client, failures=failures, delay=str(delay))


class AuthService:
    """Registration, login, refresh-token rotation and logout."""

    def __init__(
        self,
        session: AsyncSession,
        *,
        keys: SigningKeyCache,
        passwords: PasswordHasher,
        policy: TokenPolicy,
        throttle: LoginThrottle,
    ) -> None:
        self.session = session
        self.keys = keys
        self.passwords = passwords
        self.policy = policy
        self.throttle = throttle
        self.tenants = TenantRepository(session)
        self.users = UserRepository(session)
        self.refresh_tokens = RefreshTokenRepository(session)

    async def register(self, data: RegistrationCreate) -> RegistrationRead:
        """Create a tenant and its first user, who is always the tenant's owner."""
        email = normalize_email(str(data.email))
        if await self.users.email_exists(email):
            raise EmailAlreadyRegisteredError
        password_hash = await self.passwords.hash(data.password)
        now = utcnow()
        tenant = await self.tenants.add(
            Tenant(id=str(uuid.uuid4()), name=data.tenant_name, created_at=now)
        )
        user = User(
            id=str(uuid.uuid4()),
            tenant_id=tenant.id,
            email=email,
            password_hash=password_hash,
            role=OWNER_ROLE,
            active=True,
            created_at=now,
        )
        try:
            await self.users.add(user)
        except IntegrityError as exc:  # a concurrent registration with the same e-mail won
            raise EmailAlreadyRegisteredError from exc
        _log.info("tenant_registered", tenant_id=tenant.id, user_id=user.id)
        return RegistrationRead(tenant_id=tenant.id, user_id=user.id, email=email, role="owner")

    async def get_tenant(self, tenant_id: str) -> TenantFound:
        """Internal: whether a tenant exists (404 otherwise)."""
        tenant = await self.tenants.get(tenant_id)
        if tenant is None:
            raise TenantNotFoundError
        return TenantFound(id=tenant.id, created_at=tenant.created_at)

    async def login(self, data: LoginRequest, client: str) -> TokenPairRead:
        """Tokens for valid credentials; one answer for every kind of failure.

        Failed sign-ins are throttled per (account, client address), per address and per
        account (docs/login-throttling.md), all keyed by the e-mail whether or not an account
        has it, so an unknown e-mail is answered exactly like a real one. Nothing is written to
        the user's row on a failure: another address's failures never lock the owner out.
        """
        email = normalize_email(data.email)
        await self.throttle.before_login(client, email)
        now = utcnow()
        user = await self.users.get_by_email(email)
        if user is None:
            await self.passwords.verify_against_dummy(data.password)
            await self._failed_login(client, email)
        if not await self.passwords.verify(data.password, user.password_hash) or not user.active:
            await self._failed_login(client, email)
        await self.throttle.record_success(client, email)
        if user.failed_logins or user.locked_until is not None:
            # Left by the account-wide lock of earlier versions; it is no longer enforced.
            await self.users.set_lock(user.tenant_id, user.id, None)
        return await self._issue_pair(user, family_id=str(uuid.uuid4()), now=now)

    async def _failed_login(self, client: str, email: str) -> NoReturn:
        await count_failed_password(self.throttle, self.policy, client, email)
        raise InvalidCredentialsError

    async def refresh(self, refresh_token: str, client: str) -> TokenPairRead:
        """Rotate a refresh token.

        A token rotated less than ``policy.refresh_grace`` ago answers the very pair it was
        rotated into (two tabs refreshing at once, RFC 9700 §4.14.2); presented later, it
        revokes its whole family.
        """
        await self.throttle.refresh_from(client)
        now = utcnow()
        token_hash = hash_refresh_token(refresh_token)
        stored = await self.refresh_tokens.get_by_hash(token_hash)
        if stored is None or stored.revoked_at is not None:
            raise InvalidRefreshTokenError
        await self.throttle.refresh_for(stored.user_id)
        if stored.used_at is None:
            if stored.expires_at <= now:
                raise InvalidRefreshTokenError
            if await self.refresh_tokens.mark_used(stored.tenant_id, stored.id, now):
                return await self._rotate(stored, refresh_token, now)
            # A concurrent request rotated (or revoked) it first: read the row it committed.
            stored = await self.refresh_tokens.get_by_hash(token_hash, for_update=True)
            if stored is None or stored.revoked_at is not None:
                raise InvalidRefreshTokenError
        return await self._replay(stored, refresh_token, now)

    async def _rotate(self, stored: RefreshToken, presented: str, now: datetime) -> TokenPairRead:
        """The new pair for a token this request has just marked used."""
        user = await self.users.get_in_tenant(stored.tenant_id, stored.user_id)
        if user is None or not user.active:
            await self.refresh_tokens.revoke_family(stored.tenant_id, stored.family_id, now)
            raise InvalidRefreshTokenError
        pair = await self._issue_pair(user, family_id=stored.family_id, now=now)
        if self.policy.refresh_grace > timedelta(0):
            sealed = seal_successor(presented, pair.model_dump_json().encode())
            await self.refresh_tokens.set_successor(stored.tenant_id, stored.id, sealed)
        # Older tokens of the family are past any replay: forget what they were rotated into.
        await self.refresh_tokens.forget_successors(
            stored.tenant_id, stored.family_id, used_before=now - self.policy.refresh_grace
        )
        return pair

    async def _replay(self, stored: RefreshToken, presented: str, now: datetime) -> TokenPairRead:
        """A token that was already rotated: within the grace window the pair it was rotated
        into, afterwards (or without a recorded pair) the revocation of its family."""
        used_at = stored.used_at
        if (
            used_at is not None
            and stored.successor_sealed
            and now - used_at <= self.policy.refresh_grace
        ):
            opened = open_successor(presented, stored.successor_sealed)
            if opened is not None:
                pair = TokenPairRead.model_validate_json(opened)
                elapsed = math.floor((now - used_at).total_seconds())
                _log.info(
                    "refresh_token_replayed_in_grace",
                    tenant_id=stored.tenant_id,
                    family_id=stored.family_id,
                )
                return pair.model_copy(update={"expires_in": max(0, pair.expires_in - elapsed)})
        await self._revoke_reused_family(stored, now)
        raise RefreshTokenReusedError

    async def logout(self, refresh_token: str) -> None:
        """Revoke the family of a refresh token; an unknown token is ignored (idempotent)."""
        stored = await self.refresh_tokens.get_by_hash(hash_refresh_token(refresh_token))
        if stored is None:
            return
        revoked = await self.refresh_tokens.revoke_family(
            stored.tenant_id, stored.family_id, utcnow()
        )
        _log.info("logged_out", user_id=stored.user_id, revoked_tokens=revoked)

    async def _revoke_reused_family(self, stored: RefreshToken, now: datetime) -> None:
        revoked = await self.refresh_tokens.revoke_family(stored.tenant_id, stored.family_id, now)
        _log.warning(
            "refresh_token_reuse_detected",
            tenant_id=stored.tenant_id,
            user_id=stored.user_id,
            family_id=stored.family_id,
            revoked_tokens=revoked,
        )

    async def _issue_pair(self, user: User, *, family_id: str, now: datetime) -> TokenPairRead:
        not_before = tokens_not_before(user)
        if not_before is not None and now.timestamp() < not_before:
            # Revoked in this very second (deactivated, then reactivated at once): a token
            # issued now would carry an ``iat`` that the revocation refuses.
            await asyncio.sleep(not_before - now.timestamp())
            now = utcnow()
        ring = await self.keys.signing_ring()
        access = ring.issue_access_token(
            subject=user.id,
            tenant_id=user.tenant_id,
            role=user.role,
            issuer=self.policy.issuer,
            audience=self.policy.audience,
            now=now,
            ttl=self.policy.access_ttl,
        )
        refresh = new_refresh_token()
        await self.refresh_tokens.add(
            RefreshToken(
                id=str(uuid.uuid4()),
                token_hash=hash_refresh_token(refresh),
                family_id=family_id,
                user_id=user.id,
                tenant_id=user.tenant_id,
                expires_at=now + self.policy.refresh_ttl,
                created_at=now,
            )
        )
        return TokenPairRead(
            access_token=access.token, refresh_token=refresh, expires_in=access.expires_in
        )


def _tenant_user(user: User) -> TenantUserRead:
    return TenantUserRead(
        id=user.id,
        email=user.email,
        role=user.role,
        active=user.active,
        created_at=user.created_at,
        locked_until=user.locked_until,
    )


class UserService:
    """Profiles, and the tenant's users as managed by its owners and admins."""

    def __init__(
        self,
        session: AsyncSession,
        passwords: PasswordHasher,
        *,
        policy: TokenPolicy,
        throttle: LoginThrottle,
        users: UserRepository | None = None,
        refresh_tokens: RefreshTokenRepository | None = None,
    ) -> None:
        """The repositories default to the SQL ones on ``session``; tests pass fakes."""
        self.session = session
        self.passwords = passwords
        self.policy = policy
        self.throttle = throttle
        self.users = users if users is not None else UserRepository(session)
        self.refresh_tokens = (
            refresh_tokens if refresh_tokens is not None else RefreshTokenRepository(session)
        )

    async def _confirm_password(self, user: User, password: str, client: str) -> None:
        """The caller's current password, throttled like a sign-in: an access token alone
        (stolen, say) must neither change credentials nor buy unlimited password guesses."""
        await self.throttle.before_login(client, user.email)
        if not await self.passwords.verify(password, user.password_hash):
            await count_failed_password(self.throttle, self.policy, client, user.email)
            raise WrongPasswordError

    async def get_me(self, principal: Principal) -> UserRead:
        await resolve_actor(self.users, principal)
        found = await self.users.get_with_tenant(principal.tenant_id, principal.subject)
        if found is None:
            raise UserNotFoundError
        user, tenant = found
        return UserRead(
            id=user.id,
            email=user.email,
            role=user.role,
            tenant_id=user.tenant_id,
            tenant_name=tenant.name,
            created_at=user.created_at,
        )

    async def update_me(self, principal: Principal, data: ProfileUpdate, client: str) -> UserRead:
        """Change the caller's e-mail address; the current password is required (403 if wrong)."""
        user = await resolve_actor(self.users, principal)
        if data.email is not None:
            email = normalize_email(str(data.email))
            await self._confirm_password(user, data.current_password or "", client)
            if email != user.email:
                if await self.users.email_exists(email):
                    raise EmailAlreadyRegisteredError
                user.email = email
                try:
                    await self.users.save(user)
                except IntegrityError as exc:
                    raise EmailAlreadyRegisteredError from exc
        return await self.get_me(principal)

    async def change_password(
        self, principal: Principal, data: PasswordChange, client: str
    ) -> None:
        """Needs the old password; revokes every refresh-token family but the caller's own."""
        user = await resolve_actor(self.users, principal)
        await self._confirm_password(user, data.old_password, client)
        keep_family: str | None = None
        if data.keep_refresh_token:
            kept = await self.refresh_tokens.get_by_hash(
                hash_refresh_token(data.keep_refresh_token)
            )
            if kept is not None and kept.user_id == user.id and kept.revoked_at is None:
                keep_family = kept.family_id
        user.password_hash = await self.passwords.hash(data.new_password)
        await self.users.save(user)
        revoked = await self.refresh_tokens.revoke_user(
            user.tenant_id, user.id, utcnow(), except_family=keep_family
        )
        _log.info("password_changed", user_id=user.id, revoked_tokens=revoked)

    async def create_user(self, principal: Principal, data: UserCreate) -> TenantUserRead:
        actor = await resolve_actor(self.users, principal)
        if not GRANTABLE[actor.role]:
            raise RoleNotAllowedError("Only owners and admins create users.")
        if data.role not in GRANTABLE[actor.role]:
            raise RoleNotAllowedError(f"A {actor.role} cannot create a user with role {data.role}.")
        email = normalize_email(str(data.email))
        if await self.users.email_exists(email):
            raise EmailAlreadyRegisteredError
        user = User(
            id=str(uuid.uuid4()),
            tenant_id=actor.tenant_id,
            email=email,
            password_hash=await self.passwords.hash(data.password),
            role=data.role,
            active=True,
            created_at=utcnow(),
        )
        try:
            await self.users.add(user)
        except IntegrityError as exc:
            raise EmailAlreadyRegisteredError from exc
        _log.info("user_created", tenant_id=user.tenant_id, user_id=user.id, role=user.role)
        return _tenant_user(user)

    async def list_users(self, principal: Principal, *, limit: int, cursor: str | None) -> UserPage:
        actor = await resolve_actor(self.users, principal)
        if _rank(actor.role) < _rank("admin"):
            raise RoleNotAllowedError("Only owners and admins list users.")
        position = decode_cursor(cursor, 2)
        after: tuple[datetime, str] | None = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(str(position[0])), str(position[1]))
            except ValueError as exc:
                raise BadRequestError("The cursor is not valid.") from exc
        rows = await self.users.list_page(actor.tenant_id, limit=limit + 1, after=after)
        items = [_tenant_user(u) for u in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_cursor = encode_cursor([last.created_at.isoformat(), last.id])
        return UserPage(items=items, next_cursor=next_cursor)

    async def update_user(
        self, principal: Principal, user_id: str, data: UserUpdate
    ) -> TenantUserRead:
        """Change a user's role or activation, under the rules of docs/permissions.md."""
        actor = await resolve_actor(self.users, principal)
        grantable = GRANTABLE[actor.role]
        if not grantable:
            raise RoleNotAllowedError("Only owners and admins manage users.")
        target = await self.users.get_in_tenant(actor.tenant_id, user_id)
        if target is None:
            raise UserNotFoundError
        if target.id == actor.id:
            if data.role is not None and data.role != actor.role:
                raise RoleNotAllowedError("Nobody can change their own role.")
            if data.active is False:
                raise RoleNotAllowedError("Nobody can deactivate themselves.")
            return _tenant_user(target)
        if target.role not in grantable:
            raise RoleNotAllowedError(
                f"A {actor.role} cannot manage a user with role {target.role}."
            )
        if data.role is not None and data.role not in grantable:
            raise RoleNotAllowedError(f"A {actor.role} cannot grant the role {data.role}.")
        loses_owner = (
            target.role == OWNER_ROLE
            and target.active
            and ((data.role is not None and data.role != OWNER_ROLE) or data.active is False)
        )
        if loses_owner:
            owners = await self.users.lock_active_owners(actor.tenant_id)
            if not set(owners) - {target.id}:
                raise LastOwnerError
        now = utcnow()
        deactivating = target.active and data.active is False
        if data.role is not None:
            target.role = data.role
        if data.active is not None:
            target.active = data.active
        if deactivating:
            target.tokens_valid_after = now
        await self.users.save(target)
        if deactivating:
            await self.refresh_tokens.revoke_user(target.tenant_id, target.id, now)
        _log.info(
            "user_updated",
            tenant_id=target.tenant_id,
            user_id=target.id,
            by=actor.id,
            role=target.role,
            active=target.active,
        )
        return _tenant_user(target)


def api_key_role(scopes: Sequence[str]) -> str:
    """The role an API key acts with: analyst if it may write events or score, else viewer."""
    return "analyst" if {"events:write", "predictions"} & set(scopes) else "viewer"


def _api_key_read(key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id,
        name=key.name,
        scopes=list(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
    )


class ApiKeyService:
    """Integrators' API keys: created, listed and revoked by admins; verified for services."""

    def __init__(
        self, session: AsyncSession, *, keys: SigningKeyCache, policy: TokenPolicy
    ) -> None:
        self.session = session
        self.keys = keys
        self.policy = policy
        self.users = UserRepository(session)
        self.api_keys = ApiKeyRepository(session)

    async def _admin(self, principal: Principal) -> User:
        actor = await resolve_actor(self.users, principal)
        if _rank(actor.role) < _rank("admin"):
            raise RoleNotAllowedError("Only owners and admins manage API keys.")
        return actor

    async def create(self, principal: Principal, data: ApiKeyCreate) -> ApiKeyCreated:
        actor = await self._admin(principal)
        fresh = new_api_key()
        scopes: list[str] = sorted({str(scope) for scope in data.scopes})
        key = await self.api_keys.add(
            ApiKey(
                id=fresh.id,
                tenant_id=actor.tenant_id,
                name=data.name,
                scopes=scopes,
                secret_hash=fresh.secret_hash,
                created_by=actor.id,
                created_at=utcnow(),
            )
        )
        _log.info("api_key_created", tenant_id=key.tenant_id, key_id=key.id, scopes=scopes)
        return ApiKeyCreated(**_api_key_read(key).model_dump(), key=fresh.key)

    async def list(self, principal: Principal) -> ApiKeyList:
        actor = await self._admin(principal)
        return ApiKeyList(
            items=[_api_key_read(k) for k in await self.api_keys.list_active(actor.tenant_id)]
        )

    async def revoke(self, principal: Principal, key_id: str) -> None:
        actor = await self._admin(principal)
        if not await self.api_keys.revoke(actor.tenant_id, key_id, utcnow()):
            raise ApiKeyNotFoundError
        _log.info("api_key_revoked", tenant_id=actor.tenant_id, key_id=key_id)

    async def verify(self, presented: str) -> ApiKeyVerified:
        """The key's tenant and scopes plus a short-lived access token; 401 otherwise."""
        parsed = parse_api_key(presented)
        if parsed is None:
            raise InvalidApiKeyError
        key_id, secret = parsed
        key = await self.api_keys.get(key_id)
        if key is None or key.revoked_at is not None:
            raise InvalidApiKeyError
        if not hmac.compare_digest(key.secret_hash, hash_api_key_secret(secret)):
            raise InvalidApiKeyError
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at > API_KEY_TOUCH_INTERVAL:
            await self.api_keys.touch(key.id, now)
        scopes = list(key.scopes)
        ring = await self.keys.signing_ring()
        access = ring.issue_access_token(
            subject=f"{API_KEY_SUBJECT_PREFIX}{key.id}",
            tenant_id=key.tenant_id,
            role=api_key_role(scopes),
            issuer=self.policy.issuer,
            audience=self.policy.audience,
            now=now,
            ttl=self.policy.api_key_ttl,
            extra_claims={"scp": scopes},
        )
        return ApiKeyVerified(
            key_id=key.id,
            tenant_id=key.tenant_id,
            scopes=scopes,
            name=key.name,
            access_token=access.token,
            expires_in=access.expires_in,
        )


class SigningKeyService:
    """Rotation of the signing keys, by a tenant owner."""

    def __init__(self, session: AsyncSession, *, keys: SigningKeyCache) -> None:
        self.users = UserRepository(session)
        self.keys = keys

    async def rotate(self, principal: Principal) -> KeyRotated:
        actor = await resolve_actor(self.users, principal)
        if actor.role != OWNER_ROLE:
            raise RoleNotAllowedError("Only owners rotate the signing keys.")
        rotated = await self.keys.rotate()
        _log.info("signing_keys_rotated_by", user_id=actor.id, kid=rotated.kid)
        return rotated
