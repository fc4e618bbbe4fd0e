"""RelayConnection against a misbehaving relay: every protocol violation closes or
reconnects; authentication failures stop it for the user to act."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol.client import connection as connection_module
from homeseal_protocol.client.backoff import reconnect_delay
from homeseal_protocol.client.connection import RelayConnection
from homeseal_protocol.envelope import (
    ZERO_ID,
    Frame,
    FrameType,
    encode_frame,
)
from homeseal_protocol.errors import AuthRejected, NotConnected
from homeseal_protocol.keys import public_bytes

type Script = Callable[[web.WebSocketResponse], Awaitable[None]]

RELAY_KEY = X25519PrivateKey.generate()
PEER = bytes(range(10))


async def challenge(ws: web.WebSocketResponse) -> None:
    await ws.send_bytes(
        encode_frame(FrameType.AUTH_CHALLENGE, ZERO_ID, public_bytes(RELAY_KEY) + bytes(32))
    )
    msg = await ws.receive()
    assert msg.type is aiohttp.WSMsgType.BINARY
    assert msg.data[0] == FrameType.AUTH_RESPONSE
    await ws.send_bytes(encode_frame(FrameType.AUTH_OK, ZERO_ID, b"\x00"))


class FakeRelay:
    """Serves one scripted behaviour per websocket connection, in order."""

    def __init__(self) -> None:
        self.scripts: list[Script] = []
        self.connections = 0
        self.reject_upgrade: int | None = None
        self.closed_with: list[int | None] = []

    async def handler(self, request: web.Request) -> web.StreamResponse:
        if self.reject_upgrade:
            return web.Response(status=self.reject_upgrade)
        assert request.headers["Authorization"] == "Bearer tok"
        ws = web.WebSocketResponse(protocols=("homeseal.v1",))
        await ws.prepare(request)
        self.connections += 1
        script = self.scripts.pop(0) if self.scripts else None
        if script is not None:
            await script(ws)
        async for _ in ws:
            pass
        self.closed_with.append(ws.close_code)
        return ws


@pytest.fixture
async def fake_relay(socket_enabled: None) -> AsyncIterator[tuple[FakeRelay, str]]:
    relay = FakeRelay()
    app = web.Application()
    app.router.add_get("/ws/controller", relay.handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield relay, f"ws://127.0.0.1:{port}/ws/controller"
    await runner.cleanup()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_module, "reconnect_delay", lambda attempt: 0.01)


class Client:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.frames: list[Frame] = []
        self.states: list[bool] = []
        self.conn = RelayConnection(
            session,
            url,
            "tok",
            X25519PrivateKey.generate(),
            True,
            self.frames.append,
            self.states.append,
        )


@pytest.fixture
async def client(fake_relay: tuple[FakeRelay, str]) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        yield Client(session, fake_relay[1])


async def _run_until(client: Client, predicate: Callable[[], bool]) -> None:
    task = asyncio.create_task(client.conn.run())
    try:
        async with asyncio.timeout(10):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_backoff_bounds() -> None:
    for attempt in (0, 3, 10, 100):
        delay = reconnect_delay(attempt)
        assert 0 <= delay <= min(60, 2**attempt)


async def test_frames_dispatched_and_sent(
    fake_relay: tuple[FakeRelay, str], client: Client
) -> None:
    relay, _ = fake_relay
    received: list[bytes] = []

    async def script(ws: web.WebSocketResponse) -> None:
        await challenge(ws)
        await ws.send_bytes(encode_frame(FrameType.PRESENCE, PEER, b"\x01"))
        msg = await ws.receive()
        received.append(msg.data)

    relay.scripts.append(script)
    with pytest.raises(NotConnected):
        await client.conn.send(FrameType.SESSION, PEER, b"x")
    task = asyncio.create_task(client.conn.run())
    assert await client.conn.wait_connected(5)
    await client.conn.send(FrameType.SESSION, PEER, b"hello")
    async with asyncio.timeout(5):
        while not received:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    assert received == [b"\x20" + PEER + b"hello"]
    assert client.frames == [Frame(FrameType.PRESENCE, PEER, b"\x01")]
    assert client.states == [True]
    await client.conn.close()
    async with asyncio.timeout(5):
        while client.states != [True, False]:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await client.conn.wait_connected(0.01)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(b"\x7e" + PEER, id="unknown-type"),
        pytest.param(b"\x20" + PEER[:3], id="short"),
        pytest.param(encode_frame(FrameType.AUTH_OK, ZERO_ID, b"\x00"), id="auth-out-of-place"),
        pytest.param("text", id="text"),
        pytest.param(b"\x20" + PEER + bytes(5000), id="too-big"),
    ],
)
async def test_protocol_errors_reconnect(
    fake_relay: tuple[FakeRelay, str], client: Client, bad: bytes | str
) -> None:
    relay, _ = fake_relay

    async def script(ws: web.WebSocketResponse) -> None:
        await challenge(ws)
        if isinstance(bad, str):
            await ws.send_str(bad)
        else:
            await ws.send_bytes(bad)

    relay.scripts.append(script)
    relay.scripts.append(challenge)
    await _run_until(client, lambda: relay.connections == 2 and client.conn.connected)
    assert client.frames == []  # nothing from the bad connection reached the hub
    assert client.states[:3] == [True, False, True]
    assert relay.closed_with[0] in (4000, 1009)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(
            lambda ws: ws.send_bytes(encode_frame(FrameType.PRESENCE, PEER, b"\x01")),
            id="no-challenge",
        ),
        pytest.param(
            lambda ws: ws.send_bytes(encode_frame(FrameType.AUTH_CHALLENGE, ZERO_ID, b"x")),
            id="short-challenge",
        ),
        pytest.param(lambda ws: ws.close(code=1012), id="restarting"),
    ],
)
async def test_bad_authentication_phase_reconnects(
    fake_relay: tuple[FakeRelay, str], client: Client, script: Script
) -> None:
    relay, _ = fake_relay
    relay.scripts.append(script)
    relay.scripts.append(challenge)
    await _run_until(client, lambda: client.conn.connected)
    assert relay.connections == 2
    assert client.conn.last_error is None


async def test_wrong_answer_to_auth_reconnects(
    fake_relay: tuple[FakeRelay, str], client: Client
) -> None:
    relay, _ = fake_relay

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_bytes(
            encode_frame(FrameType.AUTH_CHALLENGE, ZERO_ID, public_bytes(RELAY_KEY) + bytes(32))
        )
        await ws.receive()
        await ws.send_bytes(encode_frame(FrameType.PRESENCE, PEER, b"\x01"))

    relay.scripts += [script, challenge]
    await _run_until(client, lambda: client.conn.connected)
    assert relay.closed_with[0] == 4000


@pytest.mark.parametrize("code", [4001, 4007])
async def test_auth_failure_stops(
    fake_relay: tuple[FakeRelay, str], client: Client, code: int
) -> None:
    relay, _ = fake_relay

    async def during_auth(ws: web.WebSocketResponse) -> None:
        await ws.close(code=code)

    async def after_auth(ws: web.WebSocketResponse) -> None:
        await challenge(ws)
        await ws.close(code=code)

    relay.scripts += [during_auth]
    with pytest.raises(AuthRejected):
        await asyncio.wait_for(client.conn.run(), 10)
    relay.scripts += [after_auth]
    with pytest.raises(AuthRejected):
        await asyncio.wait_for(client.conn.run(), 10)
    assert client.states == [True, False]


async def test_rejected_upgrade_stops(fake_relay: tuple[FakeRelay, str], client: Client) -> None:
    relay, _ = fake_relay
    relay.reject_upgrade = 401
    with pytest.raises(AuthRejected):
        await asyncio.wait_for(client.conn.run(), 10)
    relay.reject_upgrade = 500
    task = asyncio.create_task(client.conn.run())
    async with asyncio.timeout(5):
        while client.conn.attempt < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.conn.last_error


async def test_api_against_a_server_that_is_not_a_relay(socket_enabled: None) -> None:
    """Odd answers become typed errors, never crashes."""
    from homeseal_protocol.client import api  # noqa: PLC0415

    async def relay_info(request: web.Request) -> web.Response:
        return web.json_response({"version": 1})  # no relay_key

    async def tokens(request: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "soon"})

    async def accounts(request: web.Request) -> web.Response:
        return web.Response(status=401, text="<html>")

    async def devices(request: web.Request) -> web.Response:
        return web.json_response({"devices": [{"online": True}]})

    async def remove(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "not_found"}}, status=404)

    async def logout(request: web.Request) -> web.Response:
        return web.Response(status=418)

    app = web.Application()
    app.router.add_get("/api/v1/relay", relay_info)
    app.router.add_post("/api/v1/tokens", tokens)
    app.router.add_post("/api/v1/accounts", accounts)
    app.router.add_get("/api/v1/devices", devices)
    app.router.add_delete("/api/v1/devices/{device_id}", remove)
    app.router.add_delete("/api/v1/tokens/current", logout)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            client = api.RelayApi(session, "https://127.0.0.1")
            client.base_url = f"http://127.0.0.1:{port}"  # plain HTTP for this fake only
            with pytest.raises(api.CannotConnect):
                await client.relay_info()
            with pytest.raises(api.RateLimited) as err:
                await client.login("a", "b")
            assert err.value.retry_after is None
            with pytest.raises(api.Unauthorized):
                await client.register("a", "b")
            with pytest.raises(api.CannotConnect):
                await client.devices("t")
            with pytest.raises(api.NotFound):
                await client.remove_device("t", PEER)
            with pytest.raises(api.CannotConnect):
                await client.logout("t")
    finally:
        await runner.cleanup()
