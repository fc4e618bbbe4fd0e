"""A PostgreSQL server of the test's own: Debian's `postgresql` binaries, never its service.

`Postgres` runs `initdb` into a fresh directory (once) and then `postgres` itself in the
foreground on a loopback port (its socket in the same directory), so a test can stop,
restart or `kill -9` it like any other part. As root (CI), the server runs as the
`postgres` user (initdb refuses root), through `setpriv`, which execs: the process the
testbed holds is the postmaster itself. Authentication is `trust`, on 127.0.0.1 only.

`dsn(db)` is the URL of one database; `create_database` / `drop_database` /
`reset_database` give each test suite its own, and `query` reads it from synchronous
test code.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import tempfile
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from .ports import free_port, wait_port
from .process import ChildProcess, TestbedError, run_sync, wait_until

SERVER_USER = "postgres"


def bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin (Debian's layout)."""
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not versions:
        raise TestbedError("PostgreSQL is not installed (apt-get install postgresql)")
    return versions[-1]


def available() -> bool:
    try:
        bin_dir()
    except TestbedError:
        return False
    return True


class Postgres(ChildProcess):
    """One PostgreSQL server on 127.0.0.1:`port`, its data in `datadir` (a fresh
    directory under /tmp by default: the server's user must be able to enter it)."""

    name = "postgres"

    def __init__(self, datadir: Path | None = None, *, port: int | None = None) -> None:
        self.datadir = datadir or Path(tempfile.mkdtemp(prefix="homeseal-pg-"))
        super().__init__(self.datadir / "server.log")
        self.port = port or free_port()
        self._as_root = os.geteuid() == 0
        self._owned_dir = datadir is None

    def _prefix(self) -> list[str]:
        if not self._as_root:
            return []
        return ["setpriv", "--reuid", SERVER_USER, "--regid", SERVER_USER, "--init-groups"]

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def _initdb(self) -> None:
        data = self.datadir / "data"
        if (data / "PG_VERSION").exists():
            return
        if self._as_root:
            shutil.chown(self.datadir, SERVER_USER, SERVER_USER)
        data.mkdir(mode=0o700, exist_ok=True)
        if self._as_root:
            shutil.chown(data, SERVER_USER, SERVER_USER)
        proc = _run(
            [*self._prefix(), str(bin_dir() / "initdb"), "-D", str(data), "-U", SERVER_USER,
             "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
        )  # fmt: skip
        if proc[0] != 0:
            raise TestbedError(f"initdb failed: {proc[1][-2000:]}")

    def start(self, within: float = 30) -> None:
        self._initdb()
        data = self.datadir / "data"
        self.spawn(
            [*self._prefix(), str(bin_dir() / "postgres"), "-D", str(data),
             "-p", str(self.port), "-k", str(self.datadir),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=on",
             "-c", "synchronous_commit=on", "-c", "max_connections=300",
             "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning"],
            cwd=self.datadir,
        )  # fmt: skip
        wait_port(self.port, within, self.check_alive)
        wait_until(self._ready, within, "postgres to accept queries", interval=0.1)

    def _ready(self) -> bool:
        self.check_alive()
        code, _ = _run([str(bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)])
        return code == 0

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server and delete its directory (if the testbed made it)."""
        self.stop()
        if self._owned_dir:
            shutil.rmtree(self.datadir, ignore_errors=True)

    # -- databases

    async def execute(self, sql: str, database: str = "postgres") -> None:
        import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415 (the cluster tests' driver)

        conn = await asyncpg.connect(self.dsn(database))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create_database(self, name: str) -> str:
        """A new, empty database; returns its URL."""
        await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await self.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    async def drop_database(self, name: str) -> None:
        await self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def reset_database(self, name: str) -> None:
        """Empty every relay table of database `name` (faster than a new database)."""
        await self.execute(
            "DO $$ BEGIN IF to_regclass('accounts') IS NOT NULL THEN "
            "TRUNCATE accounts, tokens, controllers, devices RESTART IDENTITY CASCADE; "
            "END IF; END $$",
            name,
        )

    def query(self, database: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of `sql` (asyncpg placeholders $1…), from synchronous code, even inside
        a running event loop (it runs on a thread with a loop of its own)."""

        async def fetch() -> list[tuple[Any, ...]]:
            import asyncpg  # noqa: PLC0415

            conn = await asyncpg.connect(self.dsn(database))
            try:
                return [tuple(r) for r in await conn.fetch(sql, *args)]
            finally:
                await conn.close()

        return in_thread(fetch())


def in_thread[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to its end on a thread with an event loop of its own: from synchronous
    code, even one called inside a running loop (a fixture, a predicate)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(run_sync, coro).result(60)


def _run(cmd: Sequence[str]) -> tuple[int, str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=60)
    return proc.returncode, proc.stdout + proc.stderr
