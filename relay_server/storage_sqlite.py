"""SQLite storage: WAL journal, synchronous=FULL, versioned migrations.

The database holds password and token hashes: its file is created mode 0600 before
SQLite opens it, and SQLite gives its -wal and -shm files the mode of the database
file, so none of the three is ever readable by others (an older database that is, is
tightened at open).

All database calls run in one dedicated worker thread (SQLite connections are
not shared between threads), so the event loop never blocks on disk I/O and
writes are naturally serialised. Each mutating call is one transaction that has
committed — and, with synchronous=FULL, reached the disk — before it returns.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .storage import Account, Device, StorageError, Token, UsernameTaken

# Migration n brings the schema from version n to n + 1 (PRAGMA user_version).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE accounts (
        account_id    INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        account_id INTEGER NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked    INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tokens_account ON tokens(account_id);
    CREATE TABLE controllers (
        controller_id BLOB PRIMARY KEY,
        account_id    INTEGER NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
        first_seen    INTEGER NOT NULL
    );
    CREATE TABLE devices (
        device_id        BLOB PRIMARY KEY,
        public_key       BLOB NOT NULL,
        owner_account_id INTEGER REFERENCES accounts(account_id) ON DELETE SET NULL,
        claimed_at       INTEGER,
        first_seen       INTEGER NOT NULL
    );
    CREATE INDEX devices_owner ON devices(owner_account_id);
    """,
)


class SqliteStorage:
    """`Storage` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    # --- plumbing -----------------------------------------------------------

    async def _run[T](self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StorageError("storage is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as err:
            raise StorageError(str(err)) from err

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageError("storage is closed")
        return self._db

    def _create_private(self) -> None:
        """Create the database file 0600 (or tighten an existing one and its -wal/-shm)."""
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            for suffix in ("", "-wal", "-shm"):
                path = f"{self._path}{suffix}"
                try:
                    mode = os.stat(path).st_mode
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
                    os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_IRWXG | stat.S_IRWXO))
            return
        except OSError as err:
            raise sqlite3.OperationalError(f"cannot create {self._path}: {err.strerror}") from err
        os.close(fd)

    def _open_sync(self) -> None:
        self._create_private()
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed transaction survives power loss / kill -9 in WAL mode.
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            self._migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StorageError(
                f"database schema version {version} is newer than this relay ({len(MIGRATIONS)})"
            )
        for target, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; wrap each step so a crash leaves it unapplied.
            db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={target};\nCOMMIT;")

    def _write(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    # --- lifecycle ------------------------------------------------------------

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-db")
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._executor.shutdown(wait=True)
            self._executor = None
            raise

    async def close(self) -> None:
        if self._executor is None:
            return

        def _close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        try:
            await self._run(_close)
        finally:
            # The queue is empty now: the worker exits at once.
            self._executor.shutdown(wait=True)
            self._executor = None

    async def ping(self) -> None:
        await self._run(lambda: self._conn.execute("SELECT 1").fetchone())

    # --- accounts and tokens --------------------------------------------------

    async def create_account(self, username: str, password_hash: str, now: int) -> int:
        def _do() -> int:
            try:
                cur = self._write(
                    "INSERT INTO accounts (username, password_hash, created_at) VALUES (?, ?, ?)",
                    (username, password_hash, now),
                )
            except sqlite3.IntegrityError as err:
                raise UsernameTaken(username) from err
            assert cur.lastrowid is not None
            return cur.lastrowid

        return await self._run(_do)

    async def get_account_by_username(self, username: str) -> Account | None:
        return await self._get_account("username", username)

    async def get_account(self, account_id: int) -> Account | None:
        return await self._get_account("account_id", account_id)

    async def _get_account(self, column: str, value: str | int) -> Account | None:
        sql = (
            "SELECT account_id, username, password_hash, created_at FROM accounts "
            f"WHERE {column} = ?"  # column: one of the two above, never input
        )

        def _do() -> Account | None:
            row = self._conn.execute(sql, (value,)).fetchone()
            return None if row is None else Account(row[0], row[1], row[2], row[3])

        return await self._run(_do)

    async def set_password(self, account_id: int, password_hash: str) -> list[str]:
        def _do() -> list[str]:
            db = self._conn
            with _transaction(db):
                revoked = [
                    r[0]
                    for r in db.execute(
                        "SELECT token_hash FROM tokens WHERE account_id = ? AND revoked = 0",
                        (account_id,),
                    )
                ]
                db.execute(
                    "UPDATE accounts SET password_hash = ? WHERE account_id = ?",
                    (password_hash, account_id),
                )
                db.execute("UPDATE tokens SET revoked = 1 WHERE account_id = ?", (account_id,))
            return revoked

        return await self._run(_do)

    async def update_password_hash(self, account_id: int, old_hash: str, new_hash: str) -> bool:
        def _do() -> bool:
            cur = self._write(
                "UPDATE accounts SET password_hash = ? WHERE account_id = ? AND password_hash = ?",
                (new_hash, account_id, old_hash),
            )
            return cur.rowcount == 1

        return await self._run(_do)

    async def delete_account(self, account_id: int) -> list[bytes]:
        def _do() -> list[bytes]:
            db = self._conn
            with _transaction(db):
                owned = [
                    bytes(r[0])
                    for r in db.execute(
                        "SELECT device_id FROM devices WHERE owner_account_id = ?", (account_id,)
                    )
                ]
                db.execute(
                    "UPDATE devices SET owner_account_id = NULL, claimed_at = NULL "
                    "WHERE owner_account_id = ?",
                    (account_id,),
                )
                db.execute("DELETE FROM accounts WHERE account_id = ?", (account_id,))
            return owned

        return await self._run(_do)

    async def add_token(
        self, token_hash: str, account_id: int, created_at: int, expires_at: int
    ) -> None:
        await self._run(
            self._write,
            "INSERT INTO tokens (token_hash, account_id, created_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (token_hash, account_id, created_at, expires_at),
        )

    async def get_token(self, token_hash: str) -> Token | None:
        def _do() -> Token | None:
            row = self._conn.execute(
                "SELECT token_hash, account_id, created_at, expires_at, revoked FROM tokens "
                "WHERE token_hash = ?",
                (token_hash,),
            ).fetchone()
            return None if row is None else Token(row[0], row[1], row[2], row[3], bool(row[4]))

        return await self._run(_do)

    async def revoke_token(self, token_hash: str) -> None:
        await self._run(
            self._write, "UPDATE tokens SET revoked = 1 WHERE token_hash = ?", (token_hash,)
        )

    # --- endpoints ------------------------------------------------------------

    async def bind_controller(self, controller_id: bytes, account_id: int, now: int) -> int:
        def _do() -> int:
            db = self._conn
            with _transaction(db):
                db.execute(
                    "INSERT OR IGNORE INTO controllers (controller_id, account_id, first_seen) "
                    "VALUES (?, ?, ?)",
                    (controller_id, account_id, now),
                )
                row = db.execute(
                    "SELECT account_id FROM controllers WHERE controller_id = ?",
                    (controller_id,),
                ).fetchone()
            return int(row[0])

        return await self._run(_do)

    async def register_device(self, device_id: bytes, public_key: bytes, now: int) -> Device:
        select = "SELECT public_key, owner_account_id, claimed_at FROM devices WHERE device_id = ?"

        def _do() -> Device:
            db = self._conn
            row = db.execute(select, (device_id,)).fetchone()
            if row is None:
                # First contact: one durable write; reconnections only read.
                with _transaction(db):
                    db.execute(
                        "INSERT OR IGNORE INTO devices (device_id, public_key, first_seen) "
                        "VALUES (?, ?, ?)",
                        (device_id, public_key, now),
                    )
                    row = db.execute(select, (device_id,)).fetchone()
            return Device(device_id, bytes(row[0]), row[1], row[2])

        return await self._run(_do)

    async def claim_device(self, device_id: bytes, account_id: int, now: int) -> None:
        await self._run(
            self._write,
            "UPDATE devices SET owner_account_id = ?, claimed_at = ? WHERE device_id = ?",
            (account_id, now, device_id),
        )

    async def release_device(self, device_id: bytes) -> None:
        await self._run(
            self._write,
            "UPDATE devices SET owner_account_id = NULL, claimed_at = NULL WHERE device_id = ?",
            (device_id,),
        )

    async def list_devices(self, account_id: int) -> list[Device]:
        def _do() -> list[Device]:
            return [
                Device(bytes(r[0]), bytes(r[1]), r[2], r[3])
                for r in self._conn.execute(
                    "SELECT device_id, public_key, owner_account_id, claimed_at FROM devices "
                    "WHERE owner_account_id = ? ORDER BY claimed_at, device_id",
                    (account_id,),
                )
            ]

        return await self._run(_do)

    async def remove_device(self, device_id: bytes, account_id: int) -> bool:
        def _do() -> bool:
            cur = self._write(
                "UPDATE devices SET owner_account_id = NULL, claimed_at = NULL "
                "WHERE device_id = ? AND owner_account_id = ?",
                (device_id, account_id),
            )
            return cur.rowcount == 1

        return await self._run(_do)


class _transaction:
    """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
