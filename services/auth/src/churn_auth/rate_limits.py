"""Login and refresh throttling (``limits`` library): per client address, per account.

Counters live in-process (``memory://``) or in Redis (``redis://``) so replicas share them. A
broken counter store fails open (logged): the account lockout in the database still applies.
Unknown e-mail addresses get a lock of their own here, so a locked answer does not reveal
whether an account exists.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from limits import RateLimitItem, RateLimitItemPerSecond, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter

from churn_auth.config import Settings
from churn_auth.exceptions import LoginLockedError, RateLimitedError
from churn_shared.logging import get_logger

_log = get_logger(__name__)

Networks = Sequence[IPv4Network | IPv6Network]


def storage_from_url(url: str) -> Storage:
    """``memory://`` → in-process counters; ``redis://``/``rediss://`` → shared Redis counters."""
    if url.startswith("memory://"):
        return MemoryStorage()
    if url.startswith(("redis://", "rediss://")):
        return RedisStorage(f"async+{url}", implementation="redispy")
    raise ValueError(f"unsupported cache URL for rate limits: {url!r}")


def _is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Networks) -> str:
    """The caller's address: ``X-Forwarded-For`` is believed only from trusted peers (gateway)."""
    if peer is None:
        return "unknown"
    chain: list[str] = []
    if _is_trusted(peer, trusted):
        for value in forwarded_for:
            chain.extend(part.strip() for part in value.split(",") if part.strip())
    chain.append(peer)
    for address in reversed(chain):
        if not _is_trusted(address, trusted):
            return address
    return chain[0]


class LoginThrottle:
    """Raises :class:`RateLimitedError` (429 with ``Retry-After``) when a limit is exceeded."""

    def __init__(self, storage: Storage, settings: Settings) -> None:
        self.storage = storage
        self.enabled = settings.rate_limit_enabled
        self._prefix = settings.rate_limit_key_prefix
        self._strategy = SlidingWindowCounterRateLimiter(storage)
        self._fixed = FixedWindowRateLimiter(storage)
        self.login_address = parse(settings.login_rate_limit_per_address)
        self.login_account = parse(settings.login_rate_limit_per_account)
        self.refresh_address = parse(settings.refresh_rate_limit_per_address)
        self.refresh_account = parse(settings.refresh_rate_limit_per_account)
        self.unknown_account_lock = RateLimitItemPerSecond(
            settings.lockout_threshold, settings.lockout_base_seconds
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        return cls(storage_from_url(settings.cache_url), settings)

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> None:
        if not self.enabled:
            return
        try:
            allowed = await self._strategy.hit(item, self._prefix, *identifiers)
        except Exception as exc:
            _log.warning("rate_limit_storage_failed", error=repr(exc))
            return
        if allowed:
            return
        try:
            stats = await self._strategy.get_window_stats(item, self._prefix, *identifiers)
            retry_after = math.ceil(stats.reset_time - time.time())
        except Exception:
            retry_after = item.get_expiry()
        raise RateLimitedError(
            f"Too many {identifiers[0]} attempts; retry later.", retry_after=retry_after
        )

    async def login(self, address: str, email: str) -> None:
        await self._hit(self.login_address, "login", "address", address)
        await self._hit(self.login_account, "login", "account", email)

    async def refresh_from(self, address: str) -> None:
        await self._hit(self.refresh_address, "refresh", "address", address)

    async def refresh_for(self, user_id: str) -> None:
        await self._hit(self.refresh_account, "refresh", "account", user_id)

    async def check_unknown_account(self, email: str) -> None:
        """A locked answer for an unknown e-mail after as many failures as lock a real one."""
        try:
            if await self._fixed.test(self.unknown_account_lock, self._prefix, "lock", email):
                return
            stats = await self._fixed.get_window_stats(
                self.unknown_account_lock, self._prefix, "lock", email
            )
        except Exception as exc:
            _log.warning("rate_limit_storage_failed", error=repr(exc))
            return
        raise LoginLockedError(math.ceil(stats.reset_time - time.time()))

    async def record_unknown_account_failure(self, email: str) -> None:
        try:
            await self._fixed.hit(self.unknown_account_lock, self._prefix, "lock", email)
        except Exception as exc:
            _log.warning("rate_limit_storage_failed", error=repr(exc))

    async def check(self) -> bool:
        return bool(await self.storage.check())
