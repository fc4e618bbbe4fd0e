"""A lean websocket client speaking the relay envelope, for the benchmarks.

aiohttp's client costs more CPU per frame than the relay itself spends, and the
benchmarks' clients share two cores with the relay; this asyncio.Protocol does the
minimum: the upgrade, §4 authentication (with k_ctl for devices' CLAIM/RELEASE,
§4.1), binary frames, pong. Client frames carry the mask bit with an all-zero
masking key (a valid key under RFC 6455), so payloads go out unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Callable

from homeseal_protocol.envelope import SUBPROTOCOL, FrameType
from homeseal_protocol.relay_auth import ROLE_DEVICE, control_payload

from .endpoints import Endpoint

SESSION = FrameType.SESSION
PROTOCOL_ERROR = 4000
ABNORMAL_CLOSURE = 1006


def ws_frame(data: bytes) -> bytes:
    """One masked (all-zero key) binary client frame."""
    n = len(data)
    if n < 126:
        return bytes((0x82, 0x80 | n)) + b"\x00\x00\x00\x00" + data
    return bytes((0x82, 0xFE)) + n.to_bytes(2, "big") + b"\x00\x00\x00\x00" + data


class WsRelayClient(asyncio.Protocol):
    """One endpoint's relay connection. After AUTH_OK every frame goes to `on_frame`;
    `closed` gets the close code (and `on_close` is called with it) once it ends."""

    def __init__(
        self,
        endpoint: Endpoint,
        token: str | None = None,
        on_frame: Callable[[bytes], None] = lambda data: None,
        on_close: Callable[[int], None] = lambda code: None,
    ) -> None:
        self.endpoint = endpoint
        self.id = endpoint.id
        self.path = "/ws/device" if endpoint.role == ROLE_DEVICE else "/ws/controller"
        self.token = token
        self.on_frame = on_frame
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.authenticated = False
        self.claimed = False  # AUTH_OK's flag: the device has an owner
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[int] = loop.create_future()
        self.close_code: int | None = None
        self.k_ctl = b""
        self.control_seq = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
                f"{auth}\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        code = self.close_code or ABNORMAL_CLOSURE
        if not self.closed.done():
            self.closed.set_result(code)
            self.on_close(code)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost before AUTH_OK"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                if not self.ready.done():
                    status = bytes(buf[:end]).decode(errors="replace")
                    self.ready.set_exception(ConnectionError(status))
                self.close()
                return
            del buf[: end + 4]
            self.upgraded = True
        pos, size = 0, len(buf)
        on_frame = self.on_frame
        while size - pos >= 2:
            b0, n = buf[pos], buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if size - pos < head + n:
                break
            start = pos + head
            payload = bytes(buf[start : start + n])
            pos = start + n
            opcode = b0 & 0x0F
            if opcode == 0x2:
                if self.authenticated:
                    on_frame(payload)
                else:
                    self._auth(payload)
            elif opcode == 0x9:  # ping → pong with the same payload
                self._write(bytes((0x8A, 0x80 | len(payload))) + b"\x00" * 4 + payload)
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close()
                break
            elif opcode != 0xA:
                self.close_code = PROTOCOL_ERROR
                self.close()
                break
        del buf[:pos]

    # -- own API

    def send(self, frame: bytes) -> None:
        self._write(ws_frame(frame))

    def send_raw(self, ws_bytes: bytes) -> None:
        """Write a prebuilt websocket frame (see ws_frame)."""
        self._write(ws_bytes)

    def send_control(self, frame_type: int, peer: bytes) -> None:
        """CLAIM or RELEASE, authenticated under this connection's k_ctl (§4.1)."""
        self.control_seq += 1
        payload = control_payload(self.k_ctl, frame_type, peer, self.control_seq)
        self.send(bytes((frame_type,)) + peer + payload)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _auth(self, frame: bytes) -> None:
        if frame[0] == FrameType.AUTH_CHALLENGE:
            answer = self.endpoint.answer(frame)
            self.k_ctl = answer.control_key
            self.send(bytes((FrameType.AUTH_RESPONSE,)) + self.id + answer.response)
        elif frame[0] == FrameType.AUTH_OK and len(frame) == 12:
            self.authenticated = True
            self.claimed = bool(frame[11] & 1)
            if not self.ready.done():
                self.ready.set_result(None)
        else:
            self.close_code = PROTOCOL_ERROR
            self.close()


async def connect(
    host: str,
    port: int,
    endpoint: Endpoint,
    token: str | None = None,
    *,
    on_frame: Callable[[bytes], None] = lambda data: None,
    on_close: Callable[[int], None] = lambda code: None,
    time_limit: float = 30.0,
) -> WsRelayClient:
    """Connect and authenticate (AUTH_OK within `time_limit`)."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(
        lambda: WsRelayClient(endpoint, token, on_frame, on_close), host, port
    )
    await asyncio.wait_for(client.ready, time_limit)
    return client
