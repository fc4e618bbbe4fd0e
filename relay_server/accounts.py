"""Accounts, passwords and tokens: the service behind the HTTP API.

Passwords: scrypt (N=2^14, r=8, p=1 by default) with a per-user 16-byte salt,
computed in an executor. Tokens: 32 random bytes, base64url without padding;
only their SHA-256 is stored, and every comparison is constant-time.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Protocol

from .config import Config
from .ratelimit import KeyedLimiter
from .storage import Device, Storage, UsernameTaken

USERNAME_RE = re.compile(r"[a-z0-9._-]{3,64}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_LEN = 16
_HASH_LEN = 32


class ServiceError(Exception):
    """A refusal with a stable code (PROTOCOL §8); the HTTP layer picks the status."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


class AccountEvents(Protocol):
    """What the router must hear about, so live connections follow the database."""

    def tokens_revoked(self, token_hashes: list[str]) -> None: ...

    def account_deleted(self, account_id: int, devices: list[bytes]) -> None: ...

    def device_removed(self, device_id: bytes, account_id: int) -> None: ...


@dataclass(frozen=True, slots=True)
class Session:
    """An authenticated bearer token."""

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


def hash_password(password: str, n: int) -> str:
    salt = secrets.token_bytes(_SALT_LEN)
    digest = _scrypt(password, salt, n, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = bytes.fromhex(digest)
        actual = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=_HASH_LEN
    )


def normalise_username(username: str) -> str:
    name = username.lower()
    if not USERNAME_RE.fullmatch(name):
        raise ServiceError(
            "invalid_username", "usernames are 3-64 characters of a-z, 0-9, '.', '_' and '-'"
        )
    return name


def check_password_strength(password: str, username: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ServiceError(
            "weak_password", f"passwords are {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )
    lowered = password.lower()
    if lowered in common_passwords() or lowered == username:
        raise ServiceError("weak_password", "this password is too common")


class AccountService:
    def __init__(
        self,
        storage: Storage,
        config: Config,
        events: AccountEvents,
        executor: Executor,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._executor = executor
        self._config = config
        self._events = events
        self._clock = clock
        limits = config.limits
        self._login_user = KeyedLimiter(limits.login_per_user)
        self._login_addr = KeyedLimiter(limits.login_per_address)
        self._register_user = KeyedLimiter(limits.register_per_user)
        self._register_addr = KeyedLimiter(limits.register_per_address)
        # Unknown usernames cost the same scrypt time as known ones (see prepare()).
        self._dummy_hash: str | None = None

    async def prepare(self) -> None:
        """Compute the stand-in hash that unknown usernames are checked against."""
        self._dummy_hash = await self._hash(secrets.token_hex(16))

    async def _hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, hash_password, password, self._config.scrypt_n
        )

    async def _verify(self, password: str, stored: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, verify_password, password, stored)

    @staticmethod
    def _limit(*delays: float) -> None:
        delay = max(delays)
        if delay > 0:
            raise ServiceError("rate_limited", "too many attempts; retry later", delay)

    async def register(self, username: str, password: str, address: str) -> str:
        self._limit(self._register_addr.take(address))
        name = normalise_username(username)
        self._limit(self._register_user.take(name))
        check_password_strength(password, name)
        password_hash = await self._hash(password)
        try:
            await self._storage.create_account(name, password_hash, int(self._clock()))
        except UsernameTaken:
            raise ServiceError("username_taken", "this username is taken") from None
        return name

    async def login(self, username: str, password: str, address: str) -> tuple[str, int]:
        name = username.lower()
        self._limit(self._login_addr.take(address), self._login_user.take(name))
        account = await self._storage.get_account_by_username(name)
        if account is None and self._dummy_hash is None:
            self._dummy_hash = await self._hash(secrets.token_hex(16))
        stored = account.password_hash if account else self._dummy_hash
        assert stored is not None
        ok = await self._verify(password, stored)
        if account is None or not ok:
            raise ServiceError("invalid_credentials", "wrong username or password")
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        wall = self._clock()
        now = int(wall)
        # Round up: a token is valid for at least the configured lifetime.
        expires_at = math.ceil(wall) + self._config.token_lifetime_s
        await self._storage.add_token(token_hash(token), account.account_id, now, expires_at)
        return token, expires_at

    async def authenticate(self, token: str) -> Session:
        """Resolve a bearer token; ServiceError('unauthorized') when unknown/revoked/expired."""
        digest = token_hash(token)
        record = await self._storage.get_token(digest)
        if (
            record is None
            or not hmac.compare_digest(record.token_hash, digest)
            or record.revoked
            or record.expires_at <= self._clock()
        ):
            raise ServiceError("unauthorized", "missing, invalid, expired or revoked token")
        return Session(record.account_id, record.token_hash, record.expires_at)

    async def logout(self, session: Session) -> None:
        await self._storage.revoke_token(session.token_hash)
        self._events.tokens_revoked([session.token_hash])

    async def _check_password(self, account_id: int, password: str) -> None:
        account = await self._storage.get_account(account_id)
        if account is None:
            raise ServiceError("unauthorized", "the account no longer exists")
        if not await self._verify(password, account.password_hash):
            raise ServiceError("invalid_credentials", "wrong password")

    async def change_password(self, session: Session, current: str, new: str) -> None:
        account = await self._storage.get_account(session.account_id)
        if account is None:
            raise ServiceError("unauthorized", "the account no longer exists")
        await self._check_password(session.account_id, current)
        check_password_strength(new, account.username)
        revoked = await self._storage.set_password(session.account_id, await self._hash(new))
        self._events.tokens_revoked(revoked)

    async def delete_account(self, session: Session, password: str) -> None:
        await self._check_password(session.account_id, password)
        devices = await self._storage.delete_account(session.account_id)
        self._events.account_deleted(session.account_id, devices)

    async def list_devices(self, session: Session) -> list[Device]:
        return await self._storage.list_devices(session.account_id)

    async def remove_device(self, session: Session, device_id: bytes) -> None:
        if not await self._storage.remove_device(device_id, session.account_id):
            raise ServiceError("not_found", "no such device in this account")
        self._events.device_removed(device_id, session.account_id)
