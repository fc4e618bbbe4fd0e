"""PostgreSQL storage (asyncpg), for a relay of more than one node.

The same `Storage` interface as storage_sqlite, on a database that every node of a
cluster shares. asyncpg rather than psycopg 3: it is asyncio-native with its own
pool (no libpq and no thread hand-off per query), speaks the binary protocol, and
prepares and caches each statement per connection; the relay needs nothing that only
psycopg has.

- Durability: every mutating call is one transaction (an implicit one for a single
  statement) that has committed before it returns. With PostgreSQL's default
  `synchronous_commit = on` a commit has reached the server's WAL on disk, so an
  acknowledged change survives a crash or `kill -9` of the server. (Against a
  replicated cluster, `synchronous_commit = remote_apply` or `on` with synchronous
  standbys carries the same promise across a failover; that is the database's
  configuration, not the relay's.)
- Migrations: versioned like SQLite's (migration n brings the schema from version n
  to n + 1), recorded in `homeseal_schema`; each one runs in its own transaction under
  an advisory lock, so nodes starting together migrate once. A relay refuses a
  database newer than itself.
- Errors: anything the driver or the connection raises (the server is down or
  restarting, a timeout, a broken connection) becomes `StorageError`, which the HTTP
  layer answers with 503 and Retry-After and the websocket layer with 1011. The pool
  replaces broken connections by itself once the server is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final

import asyncpg  # type: ignore[import-untyped]

from .storage import Account, Device, StorageError, Token, UsernameTaken

# Migration n brings the schema from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE accounts (
        account_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at    BIGINT NOT NULL
    );
    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        account_id BIGINT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked    BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX tokens_account ON tokens(account_id);
    CREATE TABLE controllers (
        controller_id BYTEA PRIMARY KEY,
        account_id    BIGINT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
        first_seen    BIGINT NOT NULL
    );
    CREATE TABLE devices (
        device_id        BYTEA PRIMARY KEY,
        public_key       BYTEA NOT NULL,
        owner_account_id BIGINT REFERENCES accounts(account_id) ON DELETE SET NULL,
        claimed_at       BIGINT,
        first_seen       BIGINT NOT NULL
    );
    CREATE INDEX devices_owner ON devices(owner_account_id);
    """,
)

# Any number, the same on every node: the lock migrations run under.
_MIGRATION_LOCK: Final = 0x48534D47  # "HSMG"
# A query that takes longer than this fails (StorageError) instead of hanging a request.
COMMAND_TIMEOUT_S: Final = 5.0
# Opening a connection (the pool's first, and each replacement of a broken one).
CONNECT_TIMEOUT_S: Final = 3.0

# What the driver raises when the server or the connection fails.
_DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class PostgresStorage:
    """`Storage` on a PostgreSQL database (`dsn`: a postgresql:// URL), through a pool
    of at most `pool_size` connections."""

    def __init__(self, dsn: str, pool_size: int = 10) -> None:
        self._dsn = dsn
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    # --- plumbing -----------------------------------------------------------

    async def _run[T](self, fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise StorageError("storage is closed")
        try:
            async with pool.acquire(timeout=COMMAND_TIMEOUT_S) as conn:
                return await fn(conn)
        except UsernameTaken:
            raise
        except _DRIVER_ERRORS as err:
            raise StorageError(f"{type(err).__name__}: {err}") from err

    async def _execute(self, sql: str, *args: Any) -> str:
        return await self._run(lambda c: c.execute(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._run(lambda c: c.fetchrow(sql, *args))

    @staticmethod
    def _rows(status: str) -> int:
        """The row count of a command status (`UPDATE 1`)."""
        return int(status.rsplit(" ", 1)[-1])

    # --- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._pool_size,
                command_timeout=COMMAND_TIMEOUT_S,
                timeout=CONNECT_TIMEOUT_S,
                # A connection idle this long is closed (the pool reconnects on demand).
                max_inactive_connection_lifetime=60.0,
            )
        except (*_DRIVER_ERRORS, ValueError) as err:
            raise StorageError(f"cannot connect: {err}") from err
        try:
            await self._run(_migrate)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), COMMAND_TIMEOUT_S)
            except (*_DRIVER_ERRORS, asyncio.CancelledError):
                pool.terminate()

    async def ping(self) -> None:
        await self._run(lambda c: c.fetchval("SELECT 1"))

    # --- accounts and tokens --------------------------------------------------

    async def create_account(self, username: str, password_hash: str, now: int) -> int:
        async def do(c: asyncpg.Connection) -> int:
            try:
                return int(
                    await c.fetchval(
                        "INSERT INTO accounts (username, password_hash, created_at) "
                        "VALUES ($1, $2, $3) RETURNING account_id",
                        username,
                        password_hash,
                        now,
                    )
                )
            except asyncpg.UniqueViolationError as err:
                raise UsernameTaken(username) from err

        return await self._run(do)

    async def get_account_by_username(self, username: str) -> Account | None:
        return _account(
            await self._fetchrow(
                "SELECT account_id, username, password_hash, created_at FROM accounts "
                "WHERE username = $1",
                username,
            )
        )

    async def get_account(self, account_id: int) -> Account | None:
        return _account(
            await self._fetchrow(
                "SELECT account_id, username, password_hash, created_at FROM accounts "
                "WHERE account_id = $1",
                account_id,
            )
        )

    async def set_password(self, account_id: int, password_hash: str) -> list[str]:
        async def do(c: asyncpg.Connection) -> list[str]:
            async with c.transaction():
                await c.execute(
                    "UPDATE accounts SET password_hash = $1 WHERE account_id = $2",
                    password_hash,
                    account_id,
                )
                rows = await c.fetch(
                    "UPDATE tokens SET revoked = TRUE WHERE account_id = $1 AND NOT revoked "
                    "RETURNING token_hash",
                    account_id,
                )
            return [r[0] for r in rows]

        return await self._run(do)

    async def update_password_hash(self, account_id: int, old_hash: str, new_hash: str) -> bool:
        status = await self._execute(
            "UPDATE accounts SET password_hash = $1 WHERE account_id = $2 AND password_hash = $3",
            new_hash,
            account_id,
            old_hash,
        )
        return self._rows(status) == 1

    async def delete_account(self, account_id: int) -> list[bytes]:
        async def do(c: asyncpg.Connection) -> list[bytes]:
            async with c.transaction():
                rows = await c.fetch(
                    "UPDATE devices SET owner_account_id = NULL, claimed_at = NULL "
                    "WHERE owner_account_id = $1 RETURNING device_id",
                    account_id,
                )
                await c.execute("DELETE FROM accounts WHERE account_id = $1", account_id)
            return sorted(bytes(r[0]) for r in rows)

        return await self._run(do)

    async def add_token(
        self, token_hash: str, account_id: int, created_at: int, expires_at: int
    ) -> None:
        await self._execute(
            "INSERT INTO tokens (token_hash, account_id, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4)",
            token_hash,
            account_id,
            created_at,
            expires_at,
        )

    async def get_token(self, token_hash: str) -> Token | None:
        row = await self._fetchrow(
            "SELECT token_hash, account_id, created_at, expires_at, revoked FROM tokens "
            "WHERE token_hash = $1",
            token_hash,
        )
        return None if row is None else Token(row[0], row[1], row[2], row[3], bool(row[4]))

    async def revoke_token(self, token_hash: str) -> None:
        await self._execute("UPDATE tokens SET revoked = TRUE WHERE token_hash = $1", token_hash)

    # --- endpoints ------------------------------------------------------------

    async def bind_controller(self, controller_id: bytes, account_id: int, now: int) -> int:
        async def do(c: asyncpg.Connection) -> int:
            async with c.transaction():
                await c.execute(
                    "INSERT INTO controllers (controller_id, account_id, first_seen) "
                    "VALUES ($1, $2, $3) ON CONFLICT (controller_id) DO NOTHING",
                    controller_id,
                    account_id,
                    now,
                )
                return int(
                    await c.fetchval(
                        "SELECT account_id FROM controllers WHERE controller_id = $1",
                        controller_id,
                    )
                )

        return await self._run(do)

    async def register_device(self, device_id: bytes, public_key: bytes, now: int) -> Device:
        select = "SELECT public_key, owner_account_id, claimed_at FROM devices WHERE device_id = $1"

        async def do(c: asyncpg.Connection) -> Device:
            row = await c.fetchrow(select, device_id)
            if row is None:
                # First contact: one durable write; reconnections only read.
                async with c.transaction():
                    await c.execute(
                        "INSERT INTO devices (device_id, public_key, first_seen) "
                        "VALUES ($1, $2, $3) ON CONFLICT (device_id) DO NOTHING",
                        device_id,
                        public_key,
                        now,
                    )
                    row = await c.fetchrow(select, device_id)
            return Device(device_id, bytes(row[0]), row[1], row[2])

        return await self._run(do)

    async def claim_device(self, device_id: bytes, account_id: int, now: int) -> None:
        await self._execute(
            "UPDATE devices SET owner_account_id = $1, claimed_at = $2 WHERE device_id = $3",
            account_id,
            now,
            device_id,
        )

    async def release_device(self, device_id: bytes) -> None:
        await self._execute(
            "UPDATE devices SET owner_account_id = NULL, claimed_at = NULL WHERE device_id = $1",
            device_id,
        )

    async def list_devices(self, account_id: int) -> list[Device]:
        rows = await self._run(
            lambda c: c.fetch(
                "SELECT device_id, public_key, owner_account_id, claimed_at FROM devices "
                "WHERE owner_account_id = $1 ORDER BY claimed_at, device_id",
                account_id,
            )
        )
        return [Device(bytes(r[0]), bytes(r[1]), r[2], r[3]) for r in rows]

    async def remove_device(self, device_id: bytes, account_id: int) -> bool:
        status = await self._execute(
            "UPDATE devices SET owner_account_id = NULL, claimed_at = NULL "
            "WHERE device_id = $1 AND owner_account_id = $2",
            device_id,
            account_id,
        )
        return self._rows(status) == 1


def _account(row: Any) -> Account | None:
    return None if row is None else Account(row[0], row[1], row[2], row[3])


async def schema_version(conn: asyncpg.Connection) -> int:
    """The schema version of the database behind `conn` (0: never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('homeseal_schema') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT version FROM homeseal_schema"))


async def _migrate(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        # Nodes starting together: one migrates, the others wait and find it done.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS homeseal_schema (version INTEGER NOT NULL)")
        version = await conn.fetchval("SELECT version FROM homeseal_schema")
        if version is None:
            await conn.execute("INSERT INTO homeseal_schema (version) VALUES (0)")
            version = 0
    if version > len(MIGRATIONS):
        raise StorageError(
            f"database schema version {version} is newer than this relay ({len(MIGRATIONS)})"
        )
    for target in range(version + 1, len(MIGRATIONS) + 1):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            current = await conn.fetchval("SELECT version FROM homeseal_schema FOR UPDATE")
            if current >= target:
                continue  # another node applied it meanwhile
            await conn.execute(MIGRATIONS[target - 1])
            await conn.execute("UPDATE homeseal_schema SET version = $1", target)
