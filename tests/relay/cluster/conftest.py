"""Fixtures for the cluster tests: relay nodes as real processes (testbed.relay.
RelayCluster) on the session's PostgreSQL and Redis (tests/relay/conftest.py's
`cluster_servers`), a fresh database per test, HAProxy in front where a test needs a
load balancer (testbed.haproxy), and devices running the real firmware on the
MicroPython unix port (testbed.firmware)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from testbed import haproxy
from testbed.accounts import Account, new_account
from testbed.endpoints import (
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    Controller,
    Endpoint,
    Link,
    SessionClient,
    connect,
    pair_and_claim,
)
from testbed.firmware import DeviceProcess, provision
from testbed.postgres import in_thread
from testbed.relay import RelayCluster, RelayProcess
from tests.relay.conftest import ClusterServers

# Cluster timings for the tests: quick probes and a short grace.
FAST = ("--cluster-grace", "2", "--presence-ttl", "6")

pytestmark = pytest.mark.slow


@pytest.fixture
def database(cluster_servers: ClusterServers) -> Iterator[str]:
    """A fresh PostgreSQL database for this test (and Redis emptied)."""
    name = "cl_" + secrets.token_hex(4)
    dsn = in_thread(cluster_servers.pg.create_database(name))
    in_thread(cluster_servers.reset_redis())
    yield dsn
    in_thread(cluster_servers.pg.drop_database(name))


ClusterFactory = Callable[..., RelayCluster]


@pytest.fixture
def make_cluster(
    tmp_path: Path, cluster_servers: ClusterServers, database: str, socket_enabled: None
) -> Iterator[ClusterFactory]:
    """Start clusters of relay processes (3 nodes by default); stopped at the end."""
    started: list[RelayCluster] = []

    def make(count: int = 3, **kwargs: Any) -> RelayCluster:
        cluster = RelayCluster(
            tmp_path / f"cluster{len(started)}",
            database,
            cluster_servers.redis.url,
            count=count,
            **kwargs,
        )
        started.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in started:
        cluster.stop()


@pytest.fixture
def make_haproxy(tmp_path: Path) -> Iterator[Callable[[RelayCluster], haproxy.HaProxy]]:
    if not haproxy.available():
        pytest.skip("haproxy is not installed (scripts/setup installs it)")
    started: list[haproxy.HaProxy] = []

    def make(cluster: RelayCluster) -> haproxy.HaProxy:
        proxy = haproxy.HaProxy(
            tmp_path / f"haproxy{len(started)}", [n.port for n in cluster.nodes]
        )
        started.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def make_device(tmp_path: Path, socket_enabled: None) -> Iterator[Callable[..., DeviceProcess]]:
    devices: list[DeviceProcess] = []

    def make(relay_url: str, **kwargs: Any) -> DeviceProcess:
        device = DeviceProcess(tmp_path / f"device{len(devices)}", relay_url, **kwargs)
        devices.append(device)
        return device

    yield make
    for device in devices:
        device.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


CODE = "40961357"


async def cross_pair(
    http: aiohttp.ClientSession,
    ctl_node: RelayProcess,
    dev_node: RelayProcess,
    password: str | None = None,
) -> tuple[Endpoint, Link, Endpoint, Link, Account]:
    """A new account, its controller on `ctl_node` and a device on `dev_node`, paired
    and claimed across the two nodes."""
    owner = await new_account(ctl_node.base, password=password)
    controller, device = Endpoint(ROLE_CONTROLLER), Endpoint(ROLE_DEVICE)
    ctl = await connect(http, ctl_node.ws_base, controller, owner.token)
    dev = await connect(http, dev_node.ws_base, device)
    await pair_and_claim(ctl, controller.id, dev, device.id)
    return controller, ctl, device, dev, owner


async def firmware_session(
    make_device: Callable[..., DeviceProcess], relay_url: str, ctl: Controller
) -> tuple[DeviceProcess, bytes, SessionClient]:
    """The real firmware on `relay_url`, paired with `ctl`, and a session with it."""
    dev = make_device(relay_url)
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await ctl.pair(dev.device_id, CODE)
    return dev, device_pub, await ctl.open_session(dev.device_id, device_pub)


async def gauge(http: aiohttp.ClientSession, node: RelayProcess, role: str) -> int:
    """A node's homeseal_relay_connections{role=…}."""
    async with http.get(node.metrics_url) as resp:
        text = await resp.text()
    match = re.search(rf'homeseal_relay_connections\{{role="{role}"\}} (\S+)', text)
    assert match is not None, text[:500]
    return int(float(match.group(1)))


async def holder(http: aiohttp.ClientSession, cluster: RelayCluster, role: str) -> int:
    """The index of the node with an endpoint of `role` (waits up to 10 s for one)."""
    async with asyncio.timeout(10):
        while True:
            for i, node in enumerate(cluster.nodes):
                if node.alive and await gauge(http, node, role) > 0:
                    return i
            await asyncio.sleep(0.1)
