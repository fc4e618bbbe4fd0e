"""Accounts, passwords and tokens: the service behind the HTTP API.

Passwords: Argon2id (relay_server.passwords; OWASP's 19 MiB, t=2, p=1 by default),
computed on the bounded `HashPool`; hashes of the earlier scrypt scheme verify and are
replaced at the next successful login. Every password check (login, change_password,
delete_account) is rate limited per username or account and per client address.
Tokens: 32 random bytes, base64url without padding; only their SHA-256 is stored, and
every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Protocol

from .config import Config, RateLimit
from .passwords import HashPool, PoolFull, hash_password, needs_rehash, verify_password
from .ratelimit import KeyedLimiter
from .storage import Device, Storage, UsernameTaken

if TYPE_CHECKING:
    from .cluster_limits import SharedLimiter

__all__ = [
    "AccountEvents",
    "AccountService",
    "ServiceError",
    "TokenGrant",
    "hash_password",
    "token_hash",
    "verify_password",
]

_LOG = logging.getLogger("relay_server.accounts")

USERNAME_RE = re.compile(r"[a-z0-9._-]{3,64}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


class ServiceError(Exception):
    """A refusal with a stable code (PROTOCOL §8); the HTTP layer picks the status."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class AccountEvents(Protocol):
    """What the relay's registry must hear about, so live connections follow the database."""

    def tokens_revoked(self, token_hashes: list[str]) -> None: ...

    def account_deleted(self, account_id: int, devices: list[bytes]) -> None: ...

    def device_removed(self, device_id: bytes, account_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """What a valid bearer token grants: its account, until it expires."""

    account_id: int
    token_hash: str
    expires_at: int


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and line[0] != "#"
    )


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def valid_username(username: str) -> str | None:
    """The username in its stored (lowercase) form, or None if it cannot exist."""
    if len(username) > 64:  # before lower(): a long string is never copied
        return None
    name = username.lower()
    return name if USERNAME_RE.fullmatch(name) else None


def normalise_username(username: str) -> str:
    name = valid_username(username)
    if name is None:
        raise ServiceError(
            "invalid_username", "usernames are 3-64 characters of a-z, 0-9, '.', '_' and '-'"
        )
    return name


def check_password_strength(password: str, username: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ServiceError(
            "weak_password", f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )
    try:
        password.encode()
    except UnicodeEncodeError:
        raise ServiceError("invalid_request", "the password is not valid Unicode") from None
    lowered = password.lower()
    if lowered in common_passwords() or lowered == username:
        raise ServiceError("weak_password", "this password is too common")


class AccountService:
    def __init__(
        self,
        storage: Storage,
        config: Config,
        events: AccountEvents,
        pool: HashPool,
        clock: Callable[[], float] = time.time,
        *,
        shared: SharedLimiter | None = None,
    ) -> None:
        self._storage = storage
        # On a cluster the limits are Redis's (shared by the nodes); else these tables.
        self._shared = shared
        self._pool = pool
        self._config = config
        self._events = events
        self._clock = clock
        limits = config.limits

        def limiter(limit: RateLimit) -> KeyedLimiter:
            return KeyedLimiter(
                limit,
                max_entries=limits.limiter_max_entries,
                max_key_bytes=limits.limiter_max_key_bytes,
            )

        self._login_user = limiter(limits.login_per_user)
        self._login_addr = limiter(limits.login_per_address)
        self._register_user = limiter(limits.register_per_user)
        self._register_addr = limiter(limits.register_per_address)
        self._check_account = limiter(limits.password_check_per_account)
        self._check_addr = limiter(limits.password_check_per_address)
        # Unknown usernames cost the same hash time as known ones (see prepare()).
        self._dummy_hash: str | None = None

    @property
    def limiters(self) -> dict[str, KeyedLimiter]:
        """Every keyed limiter of the service, by name (metrics and tests)."""
        return {
            "login_per_user": self._login_user,
            "login_per_address": self._login_addr,
            "register_per_user": self._register_user,
            "register_per_address": self._register_addr,
            "password_check_per_account": self._check_account,
            "password_check_per_address": self._check_addr,
        }

    async def prepare(self) -> None:
        """Compute the stand-in hash that unknown usernames are checked against: a hash
        of the current scheme and cost, so checking it takes as long as a real one."""
        self._dummy_hash = await self._pool.run(
            None, hash_password, secrets.token_hex(16), self._config.password_hash
        )

    async def _hash(self, password: str, address: str) -> str:
        return await self._on_pool(address, hash_password, password, self._config.password_hash)

    async def _verify(self, password: str, stored: str, address: str) -> bool:
        return await self._on_pool(address, verify_password, password, stored)

    async def _on_pool[T](self, address: str, fn: Callable[..., T], *args: object) -> T:
        try:
            return await self._pool.run(address, fn, *args)
        except PoolFull as full:
            if full.per_address:
                raise ServiceError(
                    "rate_limited", "too many password checks in progress from this address", 1
                ) from None
            raise ServiceError("busy", "the relay is busy; retry shortly", 1) from None

    async def _take(self, limiter: KeyedLimiter, key: str | int) -> None:
        """Take one attempt of `limiter`'s budget for `key`; 429 when it has none."""
        shared = self._shared
        if shared is None:
            delay = limiter.take(key)
        else:
            name = next(n for n, lim in self.limiters.items() if lim is limiter)
            try:
                delay = await shared.take(name, limiter.limit, key)
            except Exception as err:  # SharedUnavailable: Redis does not answer
                _LOG.warning("shared rate limit unavailable", extra={"error": str(err)})
                raise ServiceError("busy", "the relay is busy; retry shortly", 1) from None
        if delay > 0:
            raise ServiceError("rate_limited", "too many attempts; retry later", delay)

    async def register(self, username: str, password: str, address: str) -> str:
        await self._take(self._register_addr, address)
        name = normalise_username(username)
        await self._take(self._register_user, name)
        check_password_strength(password, name)
        password_hash = await self._hash(password, address)
        try:
            await self._storage.create_account(name, password_hash, int(self._clock()))
        except UsernameTaken:
            raise ServiceError("username_taken", "this username is taken") from None
        return name

    async def login(self, username: str, password: str, address: str) -> tuple[str, int]:
        # A username that cannot exist is refused before it reaches a limiter, so the
        # limiters only ever hold names of at most 64 characters.
        name = valid_username(username)
        if name is None:
            raise ServiceError("invalid_credentials", "wrong username or password")
        # One after the other: an address past its limit adds no username to the table.
        await self._take(self._login_addr, address)
        await self._take(self._login_user, name)
        account = await self._storage.get_account_by_username(name)
        if account is None and self._dummy_hash is None:
            await self.prepare()
        stored = account.password_hash if account else self._dummy_hash
        assert stored is not None
        ok = await self._verify(password, stored, address)
        if account is None or not ok:
            raise ServiceError("invalid_credentials", "wrong username or password")
        if needs_rehash(stored, self._config.password_hash):
            await self._rehash(account.account_id, password, stored, address)
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        wall = self._clock()
        now = int(wall)
        # Round up: a token is valid for at least the configured lifetime.
        expires_at = math.ceil(wall) + self._config.token_lifetime_s
        await self._storage.add_token(token_hash(token), account.account_id, now, expires_at)
        return token, expires_at

    async def _rehash(self, account_id: int, password: str, old: str, address: str) -> None:
        """Replace a hash of an earlier scheme or cost after a successful login; a busy
        pool only postpones it to a later login."""
        try:
            new = await self._pool.run(address, hash_password, password, self._config.password_hash)
        except PoolFull:
            return
        if await self._storage.update_password_hash(account_id, old, new):
            _LOG.info("password rehashed", extra={"account": account_id})

    async def authenticate(self, token: str) -> TokenGrant:
        """Resolve a bearer token; ServiceError('unauthorized') when unknown/revoked/expired."""
        # Only the token alphabet gets further: a header's non-UTF-8 bytes (which aiohttp
        # decodes as surrogates) are refused like any other bad token, not hashed.
        if not TOKEN_RE.fullmatch(token):
            raise ServiceError("unauthorized", "missing, invalid, expired or revoked token")
        digest = token_hash(token)
        record = await self._storage.get_token(digest)
        if (
            record is None
            or not hmac.compare_digest(record.token_hash, digest)
            or record.revoked
            or record.expires_at <= self._clock()
        ):
            raise ServiceError("unauthorized", "missing, invalid, expired or revoked token")
        return TokenGrant(record.account_id, record.token_hash, record.expires_at)

    async def logout(self, grant: TokenGrant) -> None:
        await self._storage.revoke_token(grant.token_hash)
        self._events.tokens_revoked([grant.token_hash])

    async def _check_password(self, account_id: int, password: str, address: str) -> str:
        """Check the account's password (rate limited per account and per address);
        returns the account's username."""
        await self._take(self._check_addr, address)
        await self._take(self._check_account, account_id)
        account = await self._storage.get_account(account_id)
        if account is None:
            raise ServiceError("unauthorized", "the account no longer exists")
        if not await self._verify(password, account.password_hash, address):
            raise ServiceError("invalid_credentials", "wrong password")
        return account.username

    async def change_password(
        self, grant: TokenGrant, current: str, new: str, address: str
    ) -> None:
        username = await self._check_password(grant.account_id, current, address)
        check_password_strength(new, username)
        new_hash = await self._hash(new, address)
        revoked = await self._storage.set_password(grant.account_id, new_hash)
        self._events.tokens_revoked(revoked)

    async def delete_account(self, grant: TokenGrant, password: str, address: str) -> None:
        await self._check_password(grant.account_id, password, address)
        devices = await self._storage.delete_account(grant.account_id)
        self._events.account_deleted(grant.account_id, devices)

    async def list_devices(self, grant: TokenGrant) -> list[Device]:
        return await self._storage.list_devices(grant.account_id)

    async def remove_device(self, grant: TokenGrant, device_id: bytes) -> None:
        if not await self._storage.remove_device(device_id, grant.account_id):
            raise ServiceError("not_found", "no such device in this account")
        self._events.device_removed(device_id, grant.account_id)
