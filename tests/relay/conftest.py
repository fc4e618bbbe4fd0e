"""Fixtures for the relay suite: the relay's own server (relay_server.server.RelayServer:
its request handler, listeners and metrics listener, as `python -m relay_server` runs
them) in the test's process, with a real key file in tmp_path, an HTTP client, and
account helpers. The test-side endpoints come from testbed.endpoints; the real relay
process, for the process-level tests, is testbed.relay.RelayProcess.

Every test that uses `relay` or `relay_factory` runs twice (`relay_mode`):

- "single": one relay on a SQLite file in tmp_path, the embedded default;
- "cluster": node 0 of a three-node cluster on PostgreSQL and Redis — real servers
  the session starts once (testbed.postgres, testbed.redis), emptied before each
  test. The three nodes run in the test's process (each its own RelayServer: own
  listeners, registry, database pool and Redis connections), with the test's
  configuration; the suite's clients talk to node 0, so its internals (router,
  stats, hash pool) are the ones the tests read, while the other two nodes take the
  account events, presence and rate limits that cross nodes. Traffic between
  endpoints on different nodes is tested in tests/relay/cluster/.

Tests that read the database use `Relay.rows` (SQL with `?` placeholders, run on
whichever database the relay has) and `Relay.open_storage`."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_socket  # type: ignore[import-untyped]

from relay_server.app import ROUTER, open_storage
from relay_server.config import Argon2Params, ClusterSettings, Config, Limits, RateLimit
from relay_server.server import RelayServer
from relay_server.storage import Storage
from testbed import postgres
from testbed import redis as redis_server
from testbed.accounts import login, register
from testbed.endpoints import (
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    Link,
    connect,
    pair_and_claim,
)

PASSWORD = "a perfectly fine passphrase"
CHEAP_HASH = Argon2Params(time_cost=1, memory_kib=1024, parallelism=1)


def make_config(tmp_path: Path, **changes: Any) -> Config:
    # Generous address limits: the whole suite comes from 127.0.0.1.
    limits = Limits(
        login_per_address=RateLimit(100, 1000),
        register_per_address=RateLimit(100, 1000),
        register_per_user=RateLimit(100, 1000),
        login_per_user=RateLimit(100, 1000),
        password_check_per_address=RateLimit(100, 1000),
        hash_jobs_per_address=100,
        hash_queue=100,
        unauthenticated_per_address=1000,
    )
    limit_changes = changes.pop("limits", {})
    # A cheaper Argon2id keeps the suite fast; the process tests run the real default.
    changes.setdefault("password_hash", CHEAP_HASH)
    return Config(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        db_path=tmp_path / "relay.sqlite3",
        key_file=tmp_path / "relay.key",
        plain_http=True,
        limits=replace(limits, **limit_changes),
        **changes,
    )


CLUSTER_NODES = 3
CLUSTER_DB = "relay_suite"


@dataclass
class ClusterServers:
    """The PostgreSQL and Redis servers the cluster mode of the suite shares."""

    pg: postgres.Postgres
    redis: redis_server.RedisServer

    @property
    def dsn(self) -> str:
        return self.pg.dsn(CLUSTER_DB)

    async def reset(self) -> None:
        """Empty the database and Redis (before each test)."""
        await self.pg.reset_database(CLUSTER_DB)
        await self.reset_redis()

    async def reset_redis(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.redis.port)
        writer.write(b"FLUSHALL\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"+OK")
        writer.close()
        await writer.wait_closed()


def cluster_config(config: Config, servers: ClusterServers, node: int) -> Config:
    """`config` as node `node` of the suite's cluster."""
    return replace(
        config,
        database_url=servers.dsn,
        redis_url=servers.redis.url,
        cluster=ClusterSettings(node_name=f"node{node}"),
    )


@dataclass
class Relay:
    server: RelayServer
    http: aiohttp.ClientSession
    config: Config
    # The cluster mode: the other nodes, and the database they share with this one.
    peers: list[RelayServer] = field(default_factory=list)
    servers: ClusterServers | None = None

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of `sql` (placeholders `?`) from the relay's database, SQLite or not."""
        if self.servers is None:
            with closing(sqlite3.connect(self.config.db_path)) as db:
                return [tuple(r) for r in db.execute(sql, params)]
        numbered = iter(range(1, len(params) + 1))
        sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
        return self.servers.pg.query(CLUSTER_DB, sql, *params)

    def open_storage(self) -> Storage:
        """Another handle on the relay's database (open it, close it)."""
        return open_storage(self.config)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.server.metrics_port}/metrics"

    async def metrics(self) -> str:
        """The relay's /metrics text, from its metrics listener."""
        async with self.http.get(self.metrics_url) as resp:
            assert resp.status == 200, resp.status
            return await resp.text()

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    @property
    def router(self) -> Any:
        return self.server.app[ROUTER]

    @property
    def app(self) -> Any:
        return self.server.app

    def url(self, path: str) -> str:
        return self.base + path

    async def request(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.url(path), headers=headers, **kwargs) as resp:
            body = await resp.read()
            data = None
            if body:
                assert resp.content_type == "application/json", (resp.content_type, body)
                data = await resp.json()
            return resp.status, data, resp

    async def account(self, username: str, password: str = PASSWORD) -> str:
        """Register and log in; returns a token."""
        await register(self.http, self.base, username, password)
        return await self.login(username, password)

    async def login(self, username: str, password: str = PASSWORD) -> str:
        return await login(self.http, self.base, username, password)

    async def device(self, endpoint: Endpoint | None = None) -> tuple[Endpoint, Link]:
        endpoint = endpoint or Endpoint(ROLE_DEVICE)
        return endpoint, await connect(self.http, self.ws_base, endpoint)

    async def controller(
        self, token: str, endpoint: Endpoint | None = None
    ) -> tuple[Endpoint, Link]:
        endpoint = endpoint or Endpoint(ROLE_CONTROLLER)
        return endpoint, await connect(self.http, self.ws_base, endpoint, token)


RelayFactory = Callable[..., Any]


@pytest.fixture(autouse=True)
def _sockets(socket_enabled: None) -> None:
    """Loopback sockets for every relay test (the HA plugin blocks them by default)."""


def cluster_servers_available() -> bool:
    """PostgreSQL and Redis installed (scripts/setup), and the drivers (requirements)."""
    drivers = all(importlib.util.find_spec(m) is not None for m in ("asyncpg", "redis"))
    return drivers and postgres.available() and redis_server.available()


@pytest.fixture(scope="session")
def cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """PostgreSQL and Redis for the whole session (started on first use)."""
    if not cluster_servers_available():
        pytest.skip(
            "postgresql, redis-server, asyncpg or redis is not installed (scripts/setup, "
            "requirements-tools.txt)"
        )
    pytest_socket.enable_socket()  # session fixtures run before the per-test one
    pg = postgres.Postgres()
    rd = redis_server.RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        pg.start()
        rd.start()
        postgres.in_thread(pg.create_database(CLUSTER_DB))
        yield ClusterServers(pg, rd)
    finally:
        rd.stop()
        pg.remove()


@pytest.fixture(params=["single", "cluster"])
def relay_mode(request: pytest.FixtureRequest) -> str:
    """Which relay the suite's `relay` is: one on SQLite, or node 0 of a cluster."""
    return str(request.param)


@pytest.fixture
async def relay_factory(
    tmp_path: Path, relay_mode: str, request: pytest.FixtureRequest
) -> AsyncIterator[RelayFactory]:
    """Start relays (RelayServer, or a cluster's three) with config changes; all closed
    at the end."""
    started: list[Relay] = []
    servers: ClusterServers | None = None
    if relay_mode == "cluster":
        servers = request.getfixturevalue("cluster_servers")
        await servers.reset()

    async def start(ssl_context: Any = None, **changes: Any) -> Relay:
        config = make_config(tmp_path, **changes)
        peers: list[RelayServer] = []
        if servers is not None:
            config = cluster_config(config, servers, 0)
            for node in range(1, CLUSTER_NODES):
                peer = RelayServer(cluster_config(config, servers, node), ssl_context)
                peers.append(peer)
                await peer.setup()
                await peer.start()
        server = RelayServer(config, ssl_context)
        await server.setup()
        await server.start()
        http = aiohttp.ClientSession()
        relay = Relay(server, http, config, peers, servers)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.http.close()
        await relay.server.cleanup()
        for peer in relay.peers:
            await peer.cleanup()


@pytest.fixture
async def relay(relay_factory: RelayFactory) -> Relay:
    return await relay_factory()  # type: ignore[no-any-return]


async def eventually(predicate: Callable[[], bool], wait_s: float = 5.0) -> None:
    """Poll until the relay's state catches up (a close is handled on its own task)."""
    async with asyncio.timeout(wait_s):
        while not predicate():  # noqa: ASYNC110 (state of another task, no event to wait on)
            await asyncio.sleep(0.01)


@dataclass
class Pair:
    """An account with one controller and one device it has claimed, both connected."""

    token: str
    controller: Endpoint
    ctl: Link
    device: Endpoint
    dev: Link

    async def assert_routes(self, payload: bytes = b"\x03ping") -> None:
        await self.ctl.send(SESSION, self.device.id, payload)
        await self.dev.expect(SESSION, self.controller.id, payload)
        await self.dev.send(SESSION, self.controller.id, payload[::-1])
        await self.ctl.expect(SESSION, self.device.id, payload[::-1])


async def claimed_pair(relay: Relay, username: str) -> Pair:
    token = await relay.account(username)
    controller, ctl = await relay.controller(token)
    device, dev = await relay.device()
    await pair_and_claim(ctl, controller.id, dev, device.id)
    return Pair(token, controller, ctl, device, dev)
