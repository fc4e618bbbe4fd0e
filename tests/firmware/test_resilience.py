"""The device keeps running and stays reachable: relay restarts, and bad input
from the relay side (garbage, oversized, truncated and out-of-place frames).

Malformed websocket traffic cannot come from the real relay, so for those
cases a small proxy sits between the device and the real relay: it forwards
everything frame by frame and can slip a malformed frame in between. All else
(authentication, pairing, the session afterwards) goes through the real relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import pytest_socket  # type: ignore[import-untyped]

from testbed.accounts import new_account
from testbed.endpoints import Controller
from testbed.firmware import DeviceProcess, provision
from testbed.relay import RelayProcess

pytestmark = pytest.mark.micropython

CODE = "31415926"


@pytest.fixture(scope="module")
def token(relay: RelayProcess) -> str:
    """One account for the module (registration is rate limited per address)."""
    pytest_socket.enable_socket()
    body = json.dumps({"username": "resilience", "password": "correct horse battery 9"}).encode()
    for path in ("/api/v1/accounts", "/api/v1/tokens"):
        req = urllib.request.Request(
            relay.base + path, body, {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            data = json.loads(r.read())
    return str(data["token"])


# ---------------------------------------------------------------- relay restart


async def test_reconnects_after_the_relay_restarts(
    make_device: Callable[..., DeviceProcess], own_relay: RelayProcess
) -> None:
    _, tok = await new_account(own_relay.base)
    ctl = await Controller(own_relay.base, tok).connect()
    dev = make_device(own_relay.device_url)
    provision(dev.state, CODE)
    dev.start()
    await dev.wait_log_async("relay connected")
    device_pub = await ctl.pair(dev.device_id, CODE)
    s = await ctl.open_session(dev.device_id, device_pub)
    assert (await s.command("relay1", "turn_on"))["ok"]
    await ctl.close()

    own_relay.stop()
    await dev.wait_log_async(r"relay closed 1012")  # the relay said it is restarting
    own_relay.start()
    await dev.wait_log_async("relay connected", count=2, within=30)
    assert "relay connected claimed=1 (" in dev.output().splitlines()[-1]

    ctl = await Controller(own_relay.base, tok, key=ctl.key).connect()
    try:
        s = await ctl.open_session(dev.device_id, device_pub)
        assert s.state["relay1"] is True  # state survived; nothing rebooted
        assert (await s.command("relay1", "turn_off"))["ok"]
    finally:
        await ctl.close()
    assert dev.alive


# ---------------------------------------------------------------- bad input


def ws_frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = False
) -> bytes:
    """A server-to-client websocket frame (unmasked unless asked)."""
    head = bytes(((0x80 if fin else 0) | rsv << 4 | opcode,))
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes((m | n,))
    elif n < 65536:
        head += bytes((m | 126,)) + struct.pack(">H", n)
    else:
        head += bytes((m | 127,)) + struct.pack(">Q", n)
    if mask:
        head += b"\x00\x00\x00\x00"
    return head + payload


class _Link:
    """One proxied device connection."""

    def __init__(
        self,
        dev_r: asyncio.StreamReader,
        dev_w: asyncio.StreamWriter,
        up_r: asyncio.StreamReader,
        up_w: asyncio.StreamWriter,
    ) -> None:
        self.dev_r, self.dev_w, self.up_r, self.up_w = dev_r, dev_w, up_r, up_w
        self.lock = asyncio.Lock()
        self.device_close: int | None = None
        self.device_frames: list[tuple[int, bytes]] = []  # (opcode, unmasked payload)
        self.tasks = [asyncio.create_task(self._down()), asyncio.create_task(self._up())]

    async def _read_frame(self, r: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
        head = await r.readexactly(2)
        n = head[1] & 0x7F
        ext = b""
        if n == 126:
            ext = await r.readexactly(2)
            n = struct.unpack(">H", ext)[0]
        elif n == 127:
            ext = await r.readexactly(8)
            n = struct.unpack(">Q", ext)[0]
        key = await r.readexactly(4) if head[1] & 0x80 else b""
        body = await r.readexactly(n)
        plain = bytes(b ^ key[i % 4] for i, b in enumerate(body)) if key else body
        return head[0] & 0x0F, head + ext + key + body, plain

    async def _down(self) -> None:  # relay -> device, frame by frame
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            self.dev_w.write(await self.up_r.readuntil(b"\r\n\r\n"))
            while True:
                _, raw, _ = await self._read_frame(self.up_r)
                async with self.lock:
                    self.dev_w.write(raw)
                    await self.dev_w.drain()
        self.dev_w.close()

    async def _up(self) -> None:  # device -> relay, noting the device's close code
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            self.up_w.write(await self.dev_r.readuntil(b"\r\n\r\n"))
            while True:
                op, raw, plain = await self._read_frame(self.dev_r)
                self.device_frames.append((op, plain))
                if op == 8 and len(plain) >= 2:
                    self.device_close = struct.unpack(">H", plain[:2])[0]
                self.up_w.write(raw)
                await self.up_w.drain()
        self.up_w.close()

    async def inject(self, data: bytes, then_drop: bool = False) -> None:
        async with self.lock:
            with contextlib.suppress(OSError):
                self.dev_w.write(data)
                await self.dev_w.drain()
            if then_drop:
                self.dev_w.close()
                self.up_w.close()

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for w in (self.dev_w, self.up_w):
            w.close()


class InjectingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.links: list[_Link] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.links.append(_Link(r, w, up_r, up_w))

    async def close(self) -> None:
        for link in self.links:
            await link.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


# (name, bytes injected after authentication, drop the TCP connection after, the
# close code the device must send: None when it can only see the connection drop)
BAD_INPUT = [
    ("text message", ws_frame(1, b'{"t":"hello"}'), False, 4000),
    ("frame shorter than the header", ws_frame(2, b"\x20\x00\x01"), False, 4000),
    ("unknown frame type", ws_frame(2, b"\x77" + bytes(10) + b"x"), False, 4000),
    ("AUTH_CHALLENGE out of place", ws_frame(2, b"\x01" + bytes(10) + bytes(64)), False, 4000),
    ("oversized message", ws_frame(2, bytes(5000)), False, 1009),
    (
        "oversized fragmented message",
        ws_frame(2, bytes(3000), fin=False) + ws_frame(0, bytes(3000)),
        False,
        1009,
    ),
    ("garbage bytes", b"\xff" * 64, False, 1002),
    ("masked frame from the server", ws_frame(2, b"\x20" + bytes(20), mask=True), False, 1002),
    ("truncated frame", ws_frame(2, b"\x20" + bytes(99))[:20], True, None),
]


@pytest.mark.parametrize(
    ("data", "drop", "close_code"),
    [pytest.param(d, drop, c, id=name) for name, d, drop, c in BAD_INPUT],
)
async def test_bad_input_from_the_relay_side(
    *,
    make_device: Callable[..., DeviceProcess],
    relay: RelayProcess,
    token: str,
    tmp_path: Path,
    data: bytes,
    drop: bool,
    close_code: int | None,
) -> None:
    proxy = InjectingProxy(relay.port)
    await proxy.start()
    ctl = await Controller(relay.base, token).connect()
    try:
        dev = make_device()
        dev.write_config(f"ws://127.0.0.1:{proxy.port}/ws/device")
        provision(dev.state, CODE)
        dev.start()
        await dev.wait_log_async("relay connected")
        device_pub = await ctl.pair(dev.device_id, CODE)
        s = await ctl.open_session(dev.device_id, device_pub)

        link = proxy.links[-1]
        await link.inject(data, then_drop=drop)
        # The device drops that connection (with the right close code) and
        # comes back through a fresh one; the old session died with the link
        # only if the device says so: here it must still answer a new handshake.
        await dev.wait_log_async("relay connected", count=2, within=15)
        assert link.device_close == close_code
        assert len(proxy.links) == 2
        assert dev.alive
        s = await ctl.open_session(dev.device_id, device_pub)
        assert (await s.command("relay1", "turn_on"))["ok"]
    finally:
        await ctl.close()
        await proxy.close()


async def test_websocket_ping_fragments_and_close_from_the_relay_side(
    make_device: Callable[..., DeviceProcess], relay: RelayProcess, token: str
) -> None:
    proxy = InjectingProxy(relay.port)
    await proxy.start()
    ctl = await Controller(relay.base, token).connect()
    try:
        dev = make_device()
        dev.write_config(f"ws://127.0.0.1:{proxy.port}/ws/device")
        provision(dev.state, CODE)
        dev.start()
        await dev.wait_log_async("relay connected")
        device_pub = await ctl.pair(dev.device_id, CODE)
        link = proxy.links[-1]

        # A ping is answered with a pong carrying the same bytes.
        await link.inject(ws_frame(9, b"heartbeat"))
        for _ in range(100):
            if (10, b"heartbeat") in link.device_frames:
                break
            await asyncio.sleep(0.05)
        assert (10, b"heartbeat") in link.device_frames

        # A frame split into fragments (with a ping between them) is one message:
        # here a SESSION TRANSPORT for no session, answered with RESET no_session.
        frame = b"\x20" + ctl.id + b"\x03" + bytes(40)
        await link.inject(
            ws_frame(2, frame[:5], fin=False) + ws_frame(9, b"x") + ws_frame(0, frame[5:])
        )
        _, _, payload = await ctl.recv((0x20,))
        assert payload == b"\x04\x01"

        # The relay's close (1012 restarting) is echoed, and the device comes back.
        await link.inject(ws_frame(8, struct.pack(">H", 1012)))
        await dev.wait_log_async("relay closed 1012")
        await dev.wait_log_async("relay connected", count=2, within=15)
        assert link.device_close == 1012
        s = await ctl.open_session(dev.device_id, device_pub)
        assert (await s.command("lamp", "turn_on", brightness=9))["ok"]
    finally:
        await ctl.close()
        await proxy.close()
