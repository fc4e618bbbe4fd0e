"""The storage interface (relay_server.storage.Storage), one suite for both
implementations: SQLite (a file in tmp_path) and PostgreSQL (a fresh database on the
session's server, tests/relay/conftest.py's `cluster_servers`). Every test takes the
`storage` fixture and runs unchanged on each."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay_server.storage import Storage, StorageError, UsernameTaken
from relay_server.storage_sqlite import SqliteStorage
from testbed.ports import free_port

from .conftest import ClusterServers

NOW = 1_800_000_000
DEV1, DEV2, DEV3 = b"\x01" * 10, b"\x02" * 10, b"\x03" * 10
CTL1, CTL2 = b"\x11" * 10, b"\x12" * 10
KEY = bytes(range(32))


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, socket_enabled: None
) -> AsyncIterator[Storage]:
    store: Storage
    if request.param == "sqlite":
        store = SqliteStorage(tmp_path / "relay.sqlite3")
        name = None
    else:
        servers: ClusterServers = request.getfixturevalue("cluster_servers")
        from relay_server.storage_pg import PostgresStorage  # noqa: PLC0415 (asyncpg)

        name = "storage_" + secrets.token_hex(4)
        store = PostgresStorage(await servers.pg.create_database(name))
    await store.open()
    yield store
    await store.close()
    if name is not None:
        await servers.pg.drop_database(name)


async def test_accounts(storage: Storage) -> None:
    first = await storage.create_account("alice", "hash-a", NOW)
    second = await storage.create_account("bob", "hash-b", NOW + 1)
    assert first != second
    with pytest.raises(UsernameTaken):
        await storage.create_account("alice", "other", NOW)
    assert isinstance(UsernameTaken("x"), StorageError)
    account = await storage.get_account_by_username("alice")
    assert account is not None
    assert (account.account_id, account.username, account.password_hash) == (
        first,
        "alice",
        "hash-a",
    )
    assert account.created_at == NOW
    assert await storage.get_account(second) == await storage.get_account_by_username("bob")
    assert await storage.get_account_by_username("nobody") is None
    assert await storage.get_account(999_999) is None


async def test_tokens_and_password_changes(storage: Storage) -> None:
    account = await storage.create_account("carol", "old", NOW)
    await storage.add_token("t1", account, NOW, NOW + 60)
    await storage.add_token("t2", account, NOW, NOW + 60)
    token = await storage.get_token("t1")
    assert token is not None
    assert (token.account_id, token.created_at, token.expires_at, token.revoked) == (
        account,
        NOW,
        NOW + 60,
        False,
    )
    await storage.revoke_token("t1")
    token = await storage.get_token("t1")
    assert token is not None
    assert token.revoked
    assert await storage.get_token("missing") is None
    # A rehash replaces the hash only if it is still the one that verified.
    assert await storage.update_password_hash(account, "old", "rehashed")
    assert not await storage.update_password_hash(account, "old", "again")
    t2 = await storage.get_token("t2")
    assert t2 is not None
    assert not t2.revoked
    # A password change revokes every token and names those it revoked.
    assert sorted(await storage.set_password(account, "new")) == ["t2"]
    got = await storage.get_account(account)
    assert got is not None
    assert got.password_hash == "new"
    t2 = await storage.get_token("t2")
    assert t2 is not None
    assert t2.revoked
    assert await storage.set_password(account, "newer") == []


async def test_controllers_are_bound_to_their_first_account(storage: Storage) -> None:
    a = await storage.create_account("dave", "h", NOW)
    b = await storage.create_account("erin", "h", NOW)
    assert await storage.bind_controller(CTL1, a, NOW) == a
    assert await storage.bind_controller(CTL1, b, NOW) == a
    assert await storage.bind_controller(CTL2, b, NOW) == b


async def test_devices_claims_and_removal(storage: Storage) -> None:
    a = await storage.create_account("frank", "h", NOW)
    b = await storage.create_account("grace", "h", NOW)
    device = await storage.register_device(DEV1, KEY, NOW)
    assert (device.device_id, device.public_key, device.owner_account_id) == (DEV1, KEY, None)
    assert device.claimed_at is None
    # Registering again reads what is there (the first key stays).
    again = await storage.register_device(DEV1, bytes(32), NOW + 5)
    assert again == device
    await storage.register_device(DEV2, KEY, NOW)
    await storage.register_device(DEV3, KEY, NOW)
    await storage.claim_device(DEV2, a, NOW + 20)
    await storage.claim_device(DEV1, a, NOW + 10)
    await storage.claim_device(DEV3, b, NOW + 30)
    listed = await storage.list_devices(a)
    assert [d.device_id for d in listed] == [DEV1, DEV2]  # by claim time
    assert [d.claimed_at for d in listed] == [NOW + 10, NOW + 20]
    assert {d.owner_account_id for d in listed} == {a}
    assert not await storage.remove_device(DEV3, a)  # not a's
    assert await storage.remove_device(DEV2, a)
    assert not await storage.remove_device(DEV2, a)
    assert [d.device_id for d in await storage.list_devices(a)] == [DEV1]
    await storage.release_device(DEV1)
    assert await storage.list_devices(a) == []
    released = await storage.register_device(DEV1, KEY, NOW)
    assert (released.owner_account_id, released.claimed_at) == (None, None)


async def test_account_deletion(storage: Storage) -> None:
    a = await storage.create_account("heidi", "h", NOW)
    b = await storage.create_account("ivan", "h", NOW)
    await storage.add_token("ta", a, NOW, NOW + 60)
    await storage.bind_controller(CTL1, a, NOW)
    for device in (DEV1, DEV2):
        await storage.register_device(device, KEY, NOW)
        await storage.claim_device(device, a, NOW)
    await storage.register_device(DEV3, KEY, NOW)
    await storage.claim_device(DEV3, b, NOW)
    assert sorted(await storage.delete_account(a)) == [DEV1, DEV2]
    assert await storage.get_account(a) is None
    assert await storage.get_token("ta") is None
    # Its controller ids are free again; its devices are unclaimed; others' untouched.
    assert await storage.bind_controller(CTL1, b, NOW) == b
    device = await storage.register_device(DEV1, KEY, NOW)
    assert device.owner_account_id is None
    assert [d.device_id for d in await storage.list_devices(b)] == [DEV3]
    assert await storage.delete_account(a) == []


async def test_ping_and_closed_storage(storage: Storage) -> None:
    await storage.ping()
    await storage.close()
    with pytest.raises(StorageError):
        await storage.ping()
    with pytest.raises(StorageError):
        await storage.get_account(1)
    await storage.open()  # the fixture closes it
    await storage.ping()


async def test_an_unreachable_database_is_a_storage_error(
    tmp_path: Path, cluster_servers: ClusterServers
) -> None:
    # Nothing listens on this port: opening fails with StorageError, as a SQLite
    # file that cannot be created does.
    from relay_server.storage_pg import PostgresStorage  # noqa: PLC0415

    with pytest.raises(StorageError):
        await PostgresStorage(f"postgresql://postgres@127.0.0.1:{free_port()}/x").open()
    with pytest.raises(StorageError):
        await SqliteStorage(tmp_path / "missing" / "dir" / "db.sqlite3").open()


async def test_postgres_migrations_are_versioned(cluster_servers: ClusterServers) -> None:
    from relay_server.storage_pg import MIGRATIONS as PG_MIGRATIONS  # noqa: PLC0415
    from relay_server.storage_pg import PostgresStorage, schema_version  # noqa: PLC0415

    pg = cluster_servers.pg
    name = "migrations_" + secrets.token_hex(4)
    dsn = await pg.create_database(name)
    try:
        for _ in range(2):  # a second open finds the schema current
            store = PostgresStorage(dsn)
            await store.open()
            await store.close()
        assert pg.query(name, "SELECT version FROM homeseal_schema") == [(len(PG_MIGRATIONS),)]
        import asyncpg  # type: ignore[import-untyped]  # noqa: PLC0415

        conn = await asyncpg.connect(dsn)
        try:
            assert await schema_version(conn) == len(PG_MIGRATIONS)
            await conn.execute("UPDATE homeseal_schema SET version = version + 1")
        finally:
            await conn.close()
        with pytest.raises(StorageError, match="newer than this relay"):
            await PostgresStorage(dsn).open()
    finally:
        await pg.drop_database(name)
