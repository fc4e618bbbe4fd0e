"""Nodes of a cluster in the test's process (each a RelayServer of its own: listeners,
registry, database pool, Redis connections), so that a test can look at Redis and at a
node's internals: the presence key's life (written, expiring, refreshed, removed only
by its writer), a stale location answered GONE and looked up again, a publish that no
node receives, a slow consumer on the other side of Redis, the bounded queue towards
another node, and a subscription lost silently (the probe of the node's own inbox
rebuilds it)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay_server.app_keys import ROUTER
from relay_server.config import ClusterSettings, RateLimit
from relay_server.server import RelayServer
from testbed.accounts import new_account
from testbed.endpoints import (
    ERROR,
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    Link,
    connect,
    pair_and_claim,
)
from tests.relay.conftest import ClusterServers, cluster_config, eventually, make_config

pytestmark = pytest.mark.slow

PEER_OFFLINE = b"\x01"
# presence keys: hs:p:<d|c><id> (relay_server.cluster.presence_key)
DEVICE_KEY = b"hs:p:d"
TTL_S = 3.0


@dataclass
class Node:
    server: RelayServer

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"

    @property
    def router(self) -> Any:
        return self.server.app[ROUTER]

    @property
    def cluster(self) -> Any:
        return self.router.cluster

    @property
    def redis(self) -> Any:
        return self.cluster.redis

    async def flushed(self) -> None:
        """Until its queued presence writes, removals and events are in Redis."""
        await eventually(self.cluster._control.empty)
        await asyncio.sleep(0.1)  # the batch taken off the queue, executed


NodeFactory = Callable[..., Awaitable[list[Node]]]


@pytest.fixture
async def make_nodes(cluster_servers: ClusterServers, tmp_path: Path) -> AsyncIterator[NodeFactory]:
    """Start `count` in-process nodes on a fresh database (Redis emptied)."""
    await cluster_servers.reset_redis()
    database = "nodes_" + secrets.token_hex(3)
    dsn = await cluster_servers.pg.create_database(database)
    started: list[RelayServer] = []

    async def make(count: int = 2, outbox_bytes: int | None = None, **changes: Any) -> list[Node]:
        base = make_config(tmp_path, **changes)
        bound = {} if outbox_bytes is None else {"outbox_bytes": outbox_bytes}
        nodes = []
        for i in range(count):
            config = cluster_config(base, cluster_servers, i)
            config = replace(
                config,
                database_url=dsn,
                cluster=ClusterSettings(
                    node_name=f"node{i}", presence_ttl_s=TTL_S, unroutable_grace_s=2.0, **bound
                ),
            )
            server = RelayServer(config)
            started.append(server)
            await server.setup()
            await server.start()
            nodes.append(Node(server))
        return nodes

    yield make
    for server in started:
        await server.cleanup()
    await cluster_servers.pg.drop_database(database)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def cross_pair(
    http: aiohttp.ClientSession, ctl_node: Node, dev_node: Node
) -> tuple[Endpoint, Link, Endpoint, Link]:
    owner = await new_account(ctl_node.base, http=http)
    controller, device = Endpoint(ROLE_CONTROLLER), Endpoint(ROLE_DEVICE)
    ctl = await connect(http, ctl_node.ws_base, controller, owner.token)
    dev = await connect(http, dev_node.ws_base, device)
    await pair_and_claim(ctl, controller.id, dev, device.id)
    return controller, ctl, device, dev


async def test_presence_key_expires_is_refreshed_and_removed_only_by_its_writer(
    make_nodes: NodeFactory, http: aiohttp.ClientSession
) -> None:
    a, b = await make_nodes(2)
    device = Endpoint(ROLE_DEVICE)
    key = DEVICE_KEY + device.id
    first = await connect(http, a.ws_base, device)
    # Written before AUTH_OK: node and connection, with an expiry of the presence TTL.
    value = await a.redis.get(key)
    assert value is not None
    assert value.startswith(a.cluster.node + b"|"), value
    assert 0 < await a.redis.pttl(key) <= TTL_S * 1000
    # Refreshed while connected: still there, same value, after more than the TTL.
    await asyncio.sleep(TTL_S + 1.0)
    assert await a.redis.get(key) == value
    # A second connection on the same node replaces the first: the first one's
    # disconnect does not remove the key the second one wrote.
    second = await connect(http, a.ws_base, device)
    await first.expect_close(4002)
    await a.flushed()
    newer = await a.redis.get(key)
    assert newer is not None
    assert newer != value, (newer, value)
    # The same across nodes: the connection on node b replaces the one on node a.
    third = await connect(http, b.ws_base, device)
    await second.expect_close(4002, wait_s=1.0)
    await a.flushed()
    on_b = await a.redis.get(key)
    assert on_b is not None
    assert on_b.startswith(b.cluster.node + b"|"), on_b
    # A connection that leaves while a newer one (elsewhere, its REPLACE not here yet)
    # holds the key leaves that key alone: compare-and-delete.
    await b.redis.set(key, b"elsewhere-0a0b0c|7", px=60_000)
    await third.close()
    await eventually(lambda: device.id not in b.router.registry.devices)
    await b.flushed()
    assert await b.redis.get(key) == b"elsewhere-0a0b0c|7"
    # Its own key, it removes on disconnect.
    other = Endpoint(ROLE_DEVICE)
    link = await connect(http, b.ws_base, other)
    assert await b.redis.get(DEVICE_KEY + other.id) is not None
    await link.close()
    await eventually(lambda: other.id not in b.router.registry.devices)
    await b.flushed()
    assert await b.redis.get(DEVICE_KEY + other.id) is None


async def test_a_stale_location_is_answered_gone_and_looked_up_again(
    make_nodes: NodeFactory, http: aiohttp.ClientSession
) -> None:
    a, b, c = await make_nodes(3)
    controller, ctl, device, dev = await cross_pair(http, a, b)
    await ctl.send(SESSION, device.id, b"\x03one")
    await dev.expect(SESSION, controller.id, b"\x03one")
    where = bytes((0,)) + device.id  # role DEVICE ‖ id: node a's cache of its location
    stale = a.cluster._where[where]
    # The device moves to node c; node a missed the news ("moved" lost): its cache
    # still names node b.
    moved = await connect(http, c.ws_base, Endpoint(ROLE_DEVICE, device.private))
    await dev.expect_close(4002, wait_s=1.0)
    await eventually(lambda: device.id not in b.router.registry.devices)
    a.cluster._where[where] = (stale[0], time.monotonic() + 60)
    gone_before = a.cluster.counters["gone_received"]
    await ctl.send(SESSION, device.id, b"\x03two")
    # Node b answers GONE, node a looks it up again and sends it to node c.
    await moved.expect(SESSION, controller.id, b"\x03two")
    assert a.cluster.counters["gone_received"] == gone_before + 1
    assert b.cluster.counters["gone_sent"] >= 1
    assert a.cluster._where[where][0].startswith(c.cluster.node + b"|")
    for link in (ctl, moved):
        await link.close()


async def test_a_publish_no_node_receives_marks_the_entry_stale(
    make_nodes: NodeFactory, http: aiohttp.ClientSession
) -> None:
    (a,) = await make_nodes(1)
    owner = await new_account(a.base, http=http)
    controller = Endpoint(ROLE_CONTROLLER)
    ctl = await connect(http, a.ws_base, controller, owner.token)
    # A device whose presence names a node that is gone (killed: nobody reads its inbox).
    ghost = Endpoint(ROLE_DEVICE)
    key = DEVICE_KEY + ghost.id
    await a.redis.set(key, b"gone-0d0e0f|3", px=60_000)
    await ctl.send(SESSION, ghost.id, b"\x03anyone?")
    # The publish reached no subscriber: the entry is removed (compare-and-delete), the
    # frame looked up again, and then it is answered peer_offline.
    await ctl.expect(ERROR, ghost.id, PEER_OFFLINE)
    await eventually(lambda: a.cluster.counters["unreachable"] >= 1)
    await eventually(lambda: ghost.id not in {k[1:] for k in a.cluster._where})
    assert await a.redis.get(key) is None
    await ctl.close()


async def test_a_slow_consumer_on_another_node_is_closed_4004(
    make_nodes: NodeFactory, http: aiohttp.ClientSession
) -> None:
    a, b = await make_nodes(
        2, limits={"frames_per_device": RateLimit(1e6, 1e6), "send_queue_bytes": 32 * 1024}
    )
    controller, ctl, _, dev = await cross_pair(http, a, b)
    other_ctl, bystander_ctl, other_dev, bystander_dev = await cross_pair(http, a, b)
    # The controller on node a stops reading; frames from node b fill its queue there.
    ctl.ws._response.connection.transport.pause_reading()  # type: ignore[union-attr]
    payload = b"\x03" + bytes(4000)
    for _ in range(3000):
        await dev.send(SESSION, controller.id, payload)
        if a.router.stats.drops.get("slow_consumer"):
            break
        await asyncio.sleep(0)
    else:
        pytest.fail("node a never detected the slow consumer")
    ctl.ws._response.connection.transport.resume_reading()  # type: ignore[union-attr]
    frames = await ctl.expect_close(4004, wait_s=10)
    assert all(f.type == SESSION and f.payload == payload for f in frames)
    # The other pair across the same two nodes is unaffected.
    await bystander_ctl.send(SESSION, other_dev.id, b"\x03still")
    await bystander_dev.expect(SESSION, other_ctl.id, b"\x03still")
    for link in (dev, bystander_ctl, bystander_dev):
        await link.close()


async def test_the_queue_to_another_node_is_bounded(
    make_nodes: NodeFactory, http: aiohttp.ClientSession
) -> None:
    """Frames for another node wait in a bounded outbox (here 16 KiB) while a PUBLISH is
    in flight; beyond it they are dropped (at-most-once), counted, and what follows
    flows again."""
    a, b = await make_nodes(
        2, outbox_bytes=16 * 1024, limits={"frames_per_device": RateLimit(1e6, 1e6)}
    )
    controller, ctl, device, dev = await cross_pair(http, a, b)
    payload = b"\x03" + bytes(4000)
    for _ in range(200):  # 800 KB in a few socket reads: far more than one outbox
        await dev.send(SESSION, controller.id, payload)
    await eventually(lambda: b.router.stats.drops.get("cluster_queue_full", 0) > 0)
    assert b.cluster.counters["outbox_full"] > 0
    received = 0
    while True:
        try:
            frame = await ctl.recv(0.5)
        except TimeoutError:
            break
        received += frame.type == SESSION
    assert 0 < received < 200, received
    await dev.send(SESSION, controller.id, b"\x03after")
    await ctl.expect(SESSION, device.id, b"\x03after")
    for link in (ctl, dev):
        await link.close()


async def test_a_subscription_lost_silently_is_rebuilt_by_the_probe(
    make_nodes: NodeFactory, http: aiohttp.ClientSession
) -> None:
    """A Redis client that came back without its subscription (or a failover that
    lost it) raises no error: only the node's probe of its own inbox notices."""
    a, b = await make_nodes(2)
    controller, ctl, device, dev = await cross_pair(http, a, b)
    cluster = a.cluster
    lost, rebuilt = cluster.counters["probes_lost"], cluster.counters["subscription_rebuilds"]
    await cluster.pubsub.unsubscribe(cluster._inbox)  # silently: node a hears no frames
    await eventually(lambda: cluster.counters["subscription_rebuilds"] > rebuilt, 8.0)
    assert cluster.counters["probes_lost"] > lost
    await eventually(lambda: cluster.routable, 5.0)
    # Frames reach node a again (the one lost meanwhile ended nothing here: no session).
    deadline = time.monotonic() + 5
    while True:
        await dev.send(SESSION, controller.id, b"\x03back")
        try:
            await ctl.expect(SESSION, device.id, b"\x03back")
            break
        except (TimeoutError, AssertionError):
            if time.monotonic() > deadline:
                raise
    for link in (ctl, dev):
        await link.close()


async def test_a_subscriber_redis_drops_subscribes_again(
    make_nodes: NodeFactory, http: aiohttp.ClientSession
) -> None:
    """Redis closes the subscription of a node it finds too slow (its output-buffer
    limit for pub/sub clients): the node subscribes again, checks what it may have
    missed against the database, and frames cross again."""
    a, b = await make_nodes(2)
    controller, ctl, device, dev = await cross_pair(http, a, b)
    resyncs = a.cluster.counters["resyncs"]
    killed = await a.redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert int(killed) == 2  # both nodes' subscriptions
    await eventually(lambda: a.cluster.counters["resyncs"] > resyncs, 5.0)
    deadline = time.monotonic() + 5
    while True:
        await dev.send(SESSION, controller.id, b"\x03again")
        try:
            await ctl.expect(SESSION, device.id, b"\x03again")
            break
        except (TimeoutError, AssertionError):
            if time.monotonic() > deadline:
                raise
    await ctl.send(SESSION, device.id, b"\x03back")
    await dev.expect(SESSION, controller.id, b"\x03back")
    for link in (ctl, dev):
        await link.close()
