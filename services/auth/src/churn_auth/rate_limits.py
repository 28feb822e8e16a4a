"""Login and refresh throttling; the policy is described in docs/login-throttling.md.

Failed sign-ins are throttled per (account, client address) with a hard, growing lock; per
client address across every account with a sliding window (429); and per account across every
address with a delay only, so that nobody can lock an owner out from another address. Every
counter is keyed by the normalised e-mail whether or not an account has it, so an unknown
e-mail gets exactly the answers a real account gets.

Counters live in-process (``memory://``) or in Redis (``redis://``) so replicas share them;
Redis calls are bounded by a short timeout and a circuit breaker, with an in-process fallback
(:mod:`churn_shared.ratelimit`).
"""

from __future__ import annotations

import asyncio

from limits import RateLimitItem, parse
from limits.aio.storage import Storage

from churn_auth.config import Settings
from churn_auth.exceptions import LoginLockedError, RateLimitedError
from churn_shared.clientaddr import client_address_from
from churn_shared.ratelimit import ResilientStorage, WindowCounters, counter_storage

#: ``client_address(peer, x_forwarded_for_values, trusted)``: the caller's address behind the
#: trusted proxies (the gateway).
client_address = client_address_from


class LoginThrottle:
    """Raises :class:`RateLimitedError` (429 with ``Retry-After``) when a limit is exceeded."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.enabled = settings.rate_limit_enabled
        self._counters = WindowCounters(storage, settings.rate_limit_key_prefix)
        self.login_address = parse(settings.login_rate_limit_per_address)
        self.refresh_address = parse(settings.refresh_rate_limit_per_address)
        self.refresh_account = parse(settings.refresh_rate_limit_per_account)
        self.failures_per_address = parse(settings.login_failures_per_address)
        self.failures_per_account = parse(settings.login_failures_per_account)
        self.account_delay_seconds = settings.login_account_delay_seconds
        self.failure_memory_seconds = settings.lockout_memory_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        storage = counter_storage(
            settings.cache_url, settings.rate_limit_storage, name="auth_login_throttle"
        )
        return cls(storage, settings)

    @property
    def degraded(self) -> bool:
        """``True`` while Redis is skipped and the counters live in this process only."""
        return isinstance(self.storage, ResilientStorage) and self.storage.degraded

    async def close(self) -> None:
        if isinstance(self.storage, ResilientStorage):
            await self.storage.close()

    async def _limit(self, item: RateLimitItem, *identifiers: str) -> None:
        if not self.enabled:
            return
        retry_after = await self._counters.hit(item, *identifiers)
        if retry_after is not None:
            raise RateLimitedError(
                f"Too many {identifiers[0]} attempts; retry later.", retry_after=retry_after
            )

    async def before_login(self, address: str, email: str) -> None:
        """Refuse or slow a sign-in before its password is checked.

        In order: the request rate of the address (when rate limits are enabled); the failed
        sign-ins of the address across accounts (429 ``rate-limited``); the lock of this account
        from this address (429 ``login-locked``); then, when the account as a whole has had too
        many failures, a fixed delay — never a refusal.
        """
        await self._limit(self.login_address, "login", "address", address)
        wait = await self._counters.exhausted(
            self.failures_per_address, "login-failures", "address", address
        )
        if wait is not None:
            raise RateLimitedError(
                "Too many failed sign-in attempts from this address; retry later.",
                retry_after=wait,
            )
        locked_for = await self._counters.held_for("login-lock", email, address)
        if locked_for is not None:
            raise LoginLockedError(locked_for)
        if self.account_delay_seconds > 0 and await self._counters.exhausted(
            self.failures_per_account, "login-failures", "account", email
        ):
            await asyncio.sleep(self.account_delay_seconds)

    async def record_failure(self, address: str, email: str) -> int:
        """Count a failed sign-in everywhere; the consecutive failures of this account from this
        address (the caller decides on a lock with :meth:`lock`)."""
        await self._counters.record(self.failures_per_address, "login-failures", "address", address)
        await self._counters.record(self.failures_per_account, "login-failures", "account", email)
        return await self._counters.increment(
            "login-failures", "pair", email, address, remember_seconds=self.failure_memory_seconds
        )

    async def lock(self, address: str, email: str, seconds: int) -> None:
        """Refuse sign-ins to this account from this address for ``seconds``."""
        await self._counters.hold(seconds, "login-lock", email, address)

    async def record_success(self, address: str, email: str) -> None:
        """A successful sign-in forgets the consecutive failures from its address."""
        await self._counters.forget("login-failures", "pair", email, address)

    async def refresh_from(self, address: str) -> None:
        await self._limit(self.refresh_address, "refresh", "address", address)

    async def refresh_for(self, user_id: str) -> None:
        await self._limit(self.refresh_account, "refresh", "account", user_id)
