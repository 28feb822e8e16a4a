"""Argon2id password hashing off the event loop, with bounded concurrency; password policy."""

from __future__ import annotations

import asyncio
import secrets
from functools import cache
from importlib.resources import files

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

#: OWASP Password Storage Cheat Sheet, Argon2id option 2: m=19 MiB, t=2, p=1.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
MIN_PASSWORD_LENGTH = 10


@cache
def common_passwords() -> frozenset[str]:
    """The built-in list of common passwords (lowercased), read once from the package data."""
    text = files("churn_auth").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None if it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"The password must have at least {MIN_PASSWORD_LENGTH} characters."
    if password.strip().lower() in common_passwords():
        return "This password is too common; choose another one."
    if len(set(password)) < 3:
        return "The password repeats too few distinct characters."
    return None


class PasswordHasher:
    """Hashes and verifies passwords in worker threads, at most ``concurrency`` at once.

    Each Argon2id computation costs ~19 MiB and tens of milliseconds of CPU, so an unbounded
    number of concurrent logins could exhaust memory; the semaphore queues the excess.
    Hashes made with other parameters still verify (pwdlib reads them from the hash).
    """

    def __init__(self, concurrency: int) -> None:
        self._hash = PasswordHash(
            (
                Argon2Hasher(
                    time_cost=ARGON2_TIME_COST,
                    memory_cost=ARGON2_MEMORY_KIB,
                    parallelism=ARGON2_PARALLELISM,
                ),
            )
        )
        self._semaphore = asyncio.Semaphore(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        async with self._semaphore:
            return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        async with self._semaphore:
            return await asyncio.to_thread(self._hash.verify, password, password_hash)

    async def warm_up(self) -> str:
        """Compute the dummy hash (once, up front in the lifespan)."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    async def verify_against_dummy(self, password: str) -> None:
        """Spend the time a real verification would, for an e-mail that is not registered."""
        await self.verify(password, await self.warm_up())
