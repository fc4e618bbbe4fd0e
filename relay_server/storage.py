"""The storage interface of the relay. One implementation today: storage_sqlite.

Every mutating call returns only once its effect is durable, so the relay can
acknowledge (HTTP 2xx, CLAIMED, AUTH_OK) right after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class StorageError(Exception):
    """The database failed; the relay answers 500 / closes, it does not guess."""


class UsernameTaken(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class Account:
    account_id: int
    username: str
    password_hash: str
    created_at: int


@dataclass(frozen=True, slots=True)
class Token:
    token_hash: str
    account_id: int
    created_at: int
    expires_at: int
    revoked: bool


@dataclass(frozen=True, slots=True)
class Device:
    device_id: bytes
    public_key: bytes
    owner_account_id: int | None
    claimed_at: int | None


class Storage(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    # Accounts and tokens.
    async def create_account(self, username: str, password_hash: str, now: int) -> int: ...

    async def get_account_by_username(self, username: str) -> Account | None: ...

    async def get_account(self, account_id: int) -> Account | None: ...

    async def set_password(self, account_id: int, password_hash: str) -> list[str]:
        """Replace the hash and revoke every token; returns the revoked token hashes."""
        ...

    async def update_password_hash(self, account_id: int, old_hash: str, new_hash: str) -> bool:
        """Replace the hash if it is still `old_hash` (a rehash after login: tokens stay
        valid); False when it changed meanwhile."""
        ...

    async def delete_account(self, account_id: int) -> list[bytes]:
        """Delete the account, its tokens and controller bindings; its devices become
        unclaimed. Returns the ids of the devices it owned."""
        ...

    async def add_token(
        self, token_hash: str, account_id: int, created_at: int, expires_at: int
    ) -> None: ...

    async def get_token(self, token_hash: str) -> Token | None: ...

    async def revoke_token(self, token_hash: str) -> None: ...

    # Endpoints.
    async def bind_controller(self, controller_id: bytes, account_id: int, now: int) -> int:
        """Bind a controller id to an account on first use; returns the bound account."""
        ...

    async def register_device(self, device_id: bytes, public_key: bytes, now: int) -> Device: ...

    async def claim_device(self, device_id: bytes, account_id: int, now: int) -> None: ...

    async def release_device(self, device_id: bytes) -> None: ...

    async def list_devices(self, account_id: int) -> list[Device]: ...

    async def remove_device(self, device_id: bytes, account_id: int) -> bool:
        """Unclaim a device owned by the account; False when it does not own it."""
        ...
