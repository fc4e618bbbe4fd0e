"""A lean websocket client speaking the relay envelope, for the benchmark.

aiohttp's client costs more CPU per frame than the relay itself spends, and the
benchmark's clients share the machine with the relay; this protocol class does
the minimum: the upgrade, §4 authentication, and binary frames. Client frames
carry the mask bit with an all-zero masking key, so the payload goes out as is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LABEL = b"HomeSeal v1 relay auth"
AUTH_CHALLENGE, AUTH_RESPONSE, AUTH_OK = 0x01, 0x02, 0x03
SESSION = 0x20


def ws_frame(data: bytes) -> bytes:
    """A masked (all-zero key) binary client frame."""
    n = len(data)
    if n < 126:
        return bytes((0x82, 0x80 | n)) + b"\x00\x00\x00\x00" + data
    return bytes((0x82, 0xFE)) + n.to_bytes(2, "big") + b"\x00\x00\x00\x00" + data


class Endpoint:
    def __init__(self, private: X25519PrivateKey, role: int) -> None:
        self.private = private
        self.pub = private.public_key().public_bytes_raw()
        self.id = hashlib.sha256(self.pub).digest()[:10]
        self.role = role

    def respond(self, challenge: bytes) -> bytes:
        relay_pub, nonce = challenge[11:43], challenge[43:75]
        dh = self.private.exchange(X25519PublicKey.from_public_bytes(relay_pub))
        k = HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=LABEL).derive(dh)
        mac = hmac.new(
            k, LABEL + bytes((self.role,)) + relay_pub + self.pub + nonce, hashlib.sha256
        ).digest()
        return bytes((AUTH_RESPONSE,)) + self.id + self.pub + mac


class WsRelayClient(asyncio.Protocol):
    """One endpoint connection. `on_frame(data)` gets every relay frame after AUTH_OK."""

    def __init__(self, endpoint: Endpoint, path: str, token: str | None = None) -> None:
        self.endpoint = endpoint
        self.path = path
        self.token = token
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.on_frame: Callable[[bytes], None] = lambda data: None
        self.authenticated = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        auth = f"Authorization: Bearer {self.token}\r\n" if self.token else ""
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: homeseal.v1\r\n"
                f"{auth}\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(1006)
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost before AUTH_OK"))

    def send(self, frame: bytes) -> None:
        assert self.transport is not None
        self.transport.write(ws_frame(frame))

    def send_raw(self, ws_bytes: bytes) -> None:
        """Write a prebuilt websocket frame (see ws_frame)."""
        assert self.transport is not None
        self.transport.write(ws_bytes)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:12])
            if not status.startswith(b"HTTP/1.1 101"):
                self.ready.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                assert self.transport is not None
                self.transport.close()
                return
            del buf[: end + 4]
            self.upgraded = True
        pos = 0
        size = len(buf)
        on_frame = self.on_frame
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if size - pos < head + n:
                break
            start = pos + head
            payload = bytes(buf[start : start + n])
            pos = start + n
            opcode = b0 & 0x0F
            if opcode == 2:
                if self.authenticated:
                    on_frame(payload)
                else:
                    self._auth(payload)
            elif opcode == 9:  # ping → pong
                assert self.transport is not None
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + b"\x00" * 4 + payload)
            elif opcode == 8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                if not self.closed.done():
                    self.closed.set_result(code)
                assert self.transport is not None
                self.transport.close()
                break
        del buf[:pos]

    def _auth(self, frame: bytes) -> None:
        if frame[0] == AUTH_CHALLENGE:
            self.send(self.endpoint.respond(frame))
        elif frame[0] == AUTH_OK:
            self.authenticated = True
            self.ready.set_result(None)


async def connect(
    host: str, port: int, endpoint: Endpoint, token: str | None = None
) -> WsRelayClient:
    path = "/ws/controller" if token else "/ws/device"
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(
        lambda: WsRelayClient(endpoint, path, token), host, port
    )
    await asyncio.wait_for(proto.ready, 30)
    return proto
