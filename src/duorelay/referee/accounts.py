"""Accounts of every refereed service: sign-up, log-in, and what they may cost.

One :class:`Accounts` per process serves the UTTT server and the XO game API
(one ``accounts`` table: a player signed up through one logs into the other
with the same name and password). Passwords are hashed with Argon2id
(argon2-cffi's ``PasswordHasher``; RFC 9106), which is slow on purpose, so:

- hashing runs in worker threads under its own ``trio.CapacityLimiter``
  (:data:`HASHING_THREADS`), never in the store's threads, so logins wait for
  each other and not for the database;
- every attempt is charged to two token buckets first, one per client address
  and one per name (``DUORELAY_LOGIN_RATE`` attempts a second, bursts of
  ``DUORELAY_LOGIN_BURST``); past either, :class:`LoginRefused` with
  ``retry_after`` and no hashing at all, so the CPU one client can spend on
  Argon2 is bounded by the settings;
- a name without an account still costs one verification (of a fixed hash),
  so the answer's timing does not tell which names exist.

Errors: :class:`LoginRefused` (``reason`` is safe to show to the player).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import argon2
import trio
from argon2.exceptions import InvalidHashError, VerificationError

from duorelay.core.limits import Buckets
from duorelay.store import accounts as queries
from duorelay.store.accounts import Account
from duorelay.store.gateway import Store

NAME = re.compile(r"[a-z0-9_-]{3,16}")
"""Account names (docs/uttt.md, Client -> server: login), matched whole after
lowercasing."""

MAX_PASSWORD = 128
"""Characters a password may have at most (the UTTT contract allows 32)."""

HASHING_THREADS = 2
"""Argon2 computations one process runs at once (the machine's cores)."""

BUCKETS = 10_000
"""Addresses (and names) whose login attempts are remembered at once."""

PROFILES = {
    "rfc9106-low-memory": argon2.profiles.RFC_9106_LOW_MEMORY,
    "cheapest": argon2.profiles.CHEAPEST,
}
"""``DUORELAY_PASSWORD_PROFILE`` values: RFC 9106's second recommended option
(t=3, 64 MiB, p=4; about 0.1 s a hash here) and argon2-cffi's cheapest, for
tests only."""


class LoginRefused(Exception):
    """A sign-up or log-in refused; ``reason`` is safe to show; ``retry_after``
    (seconds) is set when the attempt was over the rate limit."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LoginLimit:
    """Attempts a second (``rate``) and in a burst (``burst``), per address and per name."""

    rate: float
    burst: int


def valid_name(name: object) -> str | None:
    """``name`` lowercased if it is a valid account name (:data:`NAME`), else ``None``."""
    if not isinstance(name, str) or len(name) > 16:
        return None
    name = name.lower()
    return name if NAME.fullmatch(name) else None


class Accounts:
    """Sign-up and log-in against ``store``, hashing with ``profile``
    (a key of :data:`PROFILES`) and rate-limited by ``limit``."""

    def __init__(
        self, store: Store, limit: LoginLimit, profile: str = "rfc9106-low-memory"
    ) -> None:
        self.store = store
        self.limit = limit
        self.hasher = argon2.PasswordHasher.from_parameters(PROFILES[profile])
        self._threads = trio.CapacityLimiter(HASHING_THREADS)
        self._by_address = Buckets(BUCKETS)
        self._by_name = Buckets(BUCKETS)
        self._absent_hash: str | None = None

    def charge(self, address: str, name: str) -> None:
        """Count one attempt for ``address`` and ``name``; :class:`LoginRefused`
        (with ``retry_after``) when either is over the limit."""
        now = trio.current_time()
        rate, burst = self.limit.rate, self.limit.burst
        by_address = self._by_address.charge(address, rate, burst, now)
        by_name = self._by_name.charge(name, rate, burst, now)
        if not (by_address and by_name):
            raise LoginRefused("too many login attempts, try again later", 1 / rate)

    async def hash(self, password: str) -> str:
        """The Argon2id hash of ``password`` (in a hashing thread)."""
        return await trio.to_thread.run_sync(self.hasher.hash, password, limiter=self._threads)

    async def verify(self, password_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``password_hash`` (in a hashing thread)."""

        def check() -> bool:
            try:
                return self.hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await trio.to_thread.run_sync(check, limiter=self._threads)

    async def sign_up(self, name: str, password: str, address: str) -> Account:
        """A new account ``name`` with ``password``. :class:`LoginRefused` for an
        invalid name or password, a taken name, or too many attempts."""
        valid = self._checked(name, password)
        self.charge(address, valid)
        password_hash = await self.hash(password)
        account = await self.store.run(
            lambda connection: queries.create_account(connection, valid, password_hash)
        )
        if account is None:
            raise LoginRefused("that name is taken")
        return account

    async def log_in(self, name: str, password: str, address: str) -> Account:
        """The account ``name`` if ``password`` is its password. :class:`LoginRefused`
        ("wrong name or password") otherwise, for temporary accounts, or for
        too many attempts."""
        valid = self._checked(name, password)
        self.charge(address, valid)
        account = await self.store.run(lambda c: queries.account_by_name(c, valid))
        if account is None or account.password_hash is None:
            await self.verify(await self._absent(), password)
            raise LoginRefused("wrong name or password")
        if not await self.verify(account.password_hash, password):
            raise LoginRefused("wrong name or password")
        if self.hasher.check_needs_rehash(account.password_hash):
            new_hash = await self.hash(password)
            await self.store.run(lambda c: queries.set_password_hash(c, account.id, new_hash))
        return account

    def _checked(self, name: str, password: str) -> str:
        valid = valid_name(name)
        if valid is None:
            raise LoginRefused("a name is 3 to 16 letters, digits, '_' or '-'")
        if not isinstance(password, str) or not 1 <= len(password) <= MAX_PASSWORD:
            raise LoginRefused(f"a password is 1 to {MAX_PASSWORD} characters")
        return valid

    async def _absent(self) -> str:
        if self._absent_hash is None:
            self._absent_hash = await self.hash("no such account")
        return self._absent_hash
