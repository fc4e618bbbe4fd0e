"""A lean websocket client for simulated devices: the upgrade, §4 authentication,
binary frames, pong. One asyncio.Protocol per device; aiohttp's client would cost
more CPU per frame than the relay itself, and the simulator shares 2 cores with it.

Client frames carry the mask bit with an all-zero masking key (a valid key under
RFC 6455), so payloads go out unchanged.
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

from custom_components.homeseal.client.envelope import FrameType
from custom_components.homeseal.client.ids import endpoint_id
from custom_components.homeseal.client.relay_auth import ROLE_DEVICE, auth_response, public_bytes

CONTROL_LABEL = b"HomeSeal v1 relay control"


def ws_frame(data: bytes) -> bytes:
    """One masked (all-zero key) binary client frame."""
    n = len(data)
    if n < 126:
        return bytes((0x82, 0x80 | n)) + b"\x00\x00\x00\x00" + data
    return bytes((0x82, 0xFE)) + n.to_bytes(2, "big") + b"\x00\x00\x00\x00" + data


class DeviceSocket(asyncio.Protocol):
    """One device's relay connection. After AUTH_OK every frame goes to `on_frame`;
    `on_close(code)` is called once when the connection ends."""

    def __init__(
        self,
        key: X25519PrivateKey,
        on_frame: Callable[[bytes], None],
        on_close: Callable[[int], None],
    ) -> None:
        self.key = key
        self.pub = public_bytes(key)
        self.id = endpoint_id(self.pub)
        self.on_frame = on_frame
        self.on_close = on_close
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = False
        self.authenticated = False
        self.claimed = False
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()
        self.close_code: int | None = None
        # §4.1: CLAIM / RELEASE carry `seq ‖ HMAC(k_ctl, type ‖ peer id ‖ seq)`.
        self.k_ctl: bytes | None = None
        self.control_seq = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        nonce = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                "GET /ws/device HTTP/1.1\r\nHost: relay\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: homeseal.v1\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(self.close_code or 1006)
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
                    self.on_frame(payload)
                else:
                    self._auth(payload)
            elif opcode == 0x9:  # ping → pong with the same payload
                self._write(bytes((0x8A, 0x80 | len(payload))) + b"\x00" * 4 + payload)
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                self.close()
                break
            elif opcode != 0xA:
                self.close_code = 4000
                self.close()
                break
        del buf[:pos]

    # -- own API

    def send(self, frame: bytes) -> None:
        self._write(ws_frame(frame))

    def send_control(self, frame_type: int, peer: bytes) -> None:
        """CLAIM or RELEASE, authenticated under this connection's k_ctl (§4.1)."""
        assert self.k_ctl is not None
        self.control_seq += 1
        seq = self.control_seq.to_bytes(4, "big")
        mac = hmac.new(self.k_ctl, bytes((frame_type,)) + peer + seq, hashlib.sha256).digest()
        self.send(bytes((frame_type,)) + peer + seq + mac)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _closed(self, code: int) -> None:
        cb, self.on_close = self.on_close, lambda code: None
        cb(code)

    def _auth(self, frame: bytes) -> None:
        if frame[0] == FrameType.AUTH_CHALLENGE:
            response = auth_response(self.key, frame[11:], ROLE_DEVICE)
            relay_pub, nonce = frame[11:43], frame[43:75]
            dh = self.key.exchange(X25519PublicKey.from_public_bytes(relay_pub))
            self.k_ctl = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=nonce, info=CONTROL_LABEL
            ).derive(dh)
            self.send(bytes((FrameType.AUTH_RESPONSE,)) + self.id + response)
        elif frame[0] == FrameType.AUTH_OK and len(frame) == 12:
            self.authenticated = True
            self.claimed = bool(frame[11] & 1)
            if not self.ready.done():
                self.ready.set_result(None)
        else:
            self.close_code = 4000
            self.close()


async def connect(host: str, port: int, sock: DeviceSocket, time_limit: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_connection(lambda: sock, host, port)
    await asyncio.wait_for(sock.ready, time_limit)
