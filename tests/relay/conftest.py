"""Fixtures for the relay suite: the relay app on aiohttp's TestServer with a real
SQLite file and key file in tmp_path, an HTTP client, and account helpers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from relay_server.app import ROUTER, create_app
from relay_server.config import Config, Limits, RateLimit

from .client import (
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    SESSION,
    Endpoint,
    Link,
    connect,
    pair_and_claim,
)

PASSWORD = "a perfectly fine passphrase"


def make_config(tmp_path: Path, **changes: Any) -> Config:
    # Generous address limits: the whole suite comes from 127.0.0.1.
    limits = Limits(
        login_per_address=RateLimit(100, 1000),
        register_per_address=RateLimit(100, 1000),
        register_per_user=RateLimit(100, 1000),
        login_per_user=RateLimit(100, 1000),
    )
    limit_changes = changes.pop("limits", {})
    # A cheaper scrypt keeps the suite fast; the process tests run the real default.
    changes.setdefault("scrypt_n", 2**11)
    return Config(
        host="127.0.0.1",
        port=0,
        db_path=tmp_path / "relay.sqlite3",
        key_file=tmp_path / "relay.key",
        plain_http=True,
        limits=replace(limits, **limit_changes),
        **changes,
    )


@dataclass
class Relay:
    server: TestServer
    http: aiohttp.ClientSession
    config: Config

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    @property
    def router(self) -> Any:
        return self.server.app[ROUTER]

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
        status, data, _ = await self.request(
            "POST", "/api/v1/accounts", json={"username": username, "password": password}
        )
        assert status == 201, data
        return await self.login(username, password)

    async def login(self, username: str, password: str = PASSWORD) -> str:
        status, data, _ = await self.request(
            "POST", "/api/v1/tokens", json={"username": username, "password": password}
        )
        assert status == 201, data
        return str(data["token"])

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


@pytest.fixture
async def relay_factory(tmp_path: Path) -> AsyncIterator[RelayFactory]:
    """Start relays (TestServer + create_app) with config changes; all closed at the end."""
    started: list[Relay] = []

    async def start(**changes: Any) -> Relay:
        config = make_config(tmp_path, **changes)
        server = TestServer(create_app(config), host="127.0.0.1")
        await server.start_server()
        http = aiohttp.ClientSession()
        relay = Relay(server, http, config)
        started.append(relay)
        return relay

    yield start
    for relay in started:
        await relay.http.close()
        await relay.server.close()


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
