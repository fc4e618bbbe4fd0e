"""A small test-side endpoint: device or controller authentication per PROTOCOL §4.

Written from the protocol text with `cryptography`, independently of the relay's
own auth module, so the two only meet on the wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

LABEL = b"HomeSeal v1 relay auth"
CONTROL_LABEL = b"HomeSeal v1 relay control"
ROLE_DEVICE = 0x01
ROLE_CONTROLLER = 0x02
ZERO_ID = bytes(10)

AUTH_CHALLENGE, AUTH_RESPONSE, AUTH_OK = 0x01, 0x02, 0x03
PAIR_START, PAIR, SESSION = 0x10, 0x11, 0x20
CLAIM, CLAIMED, RELEASE, REMOVED = 0x30, 0x31, 0x32, 0x33
PRESENCE, ERROR = 0x40, 0x41


def endpoint_id(pub: bytes) -> bytes:
    return hashlib.sha256(pub).digest()[:10]


def auth_mac(dh: bytes, role: int, relay_pub: bytes, pub: bytes, nonce: bytes) -> bytes:
    k = HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=LABEL).derive(dh)
    return hmac.new(k, LABEL + bytes((role,)) + relay_pub + pub + nonce, hashlib.sha256).digest()


def control_mac(k_ctl: bytes, frame_type: int, peer: bytes, seq: int) -> bytes:
    """§4.1: HMAC-SHA256(k_ctl, type ‖ peer id ‖ seq) of a CLAIM or RELEASE frame."""
    msg = bytes((frame_type,)) + peer + seq.to_bytes(4, "big")
    return hmac.new(k_ctl, msg, hashlib.sha256).digest()


class Endpoint:
    """A static X25519 key pair and the AUTH_RESPONSE it produces."""

    def __init__(self, role: int, private: X25519PrivateKey | None = None) -> None:
        self.role = role
        self.private = private or X25519PrivateKey.generate()
        self.pub = self.private.public_key().public_bytes_raw()
        self.id = endpoint_id(self.pub)

    def respond(self, challenge: bytes) -> bytes:
        relay_pub, nonce = challenge[11:43], challenge[43:75]
        dh = self.private.exchange(X25519PublicKey.from_public_bytes(relay_pub))
        mac = auth_mac(dh, self.role, relay_pub, self.pub, nonce)
        return bytes((AUTH_RESPONSE,)) + self.id + self.pub + mac

    def control_key(self, challenge: bytes) -> bytes:
        """k_ctl of §4.1 for the connection that received this AUTH_CHALLENGE frame."""
        relay_pub, nonce = challenge[11:43], challenge[43:75]
        dh = self.private.exchange(X25519PublicKey.from_public_bytes(relay_pub))
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=nonce, info=CONTROL_LABEL).derive(dh)


@dataclass
class Frame:
    type: int
    peer: bytes
    payload: bytes


class Link:
    """A websocket to the relay speaking relay frames."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.challenge: bytes = b""
        self.k_ctl: bytes = b""  # devices: set by connect()
        self.control_seq = 0  # seq of the last CLAIM/RELEASE sent on this connection

    async def send(self, frame_type: int, peer: bytes = ZERO_ID, payload: bytes = b"") -> None:
        await self.ws.send_bytes(bytes((frame_type,)) + peer + payload)

    def control_payload(self, frame_type: int, peer: bytes = ZERO_ID) -> bytes:
        """`seq ‖ mac` for the next CLAIM/RELEASE of this connection (§4.1); counts it."""
        assert self.k_ctl, "not an authenticated device connection"
        self.control_seq += 1
        seq = self.control_seq
        return seq.to_bytes(4, "big") + control_mac(self.k_ctl, frame_type, peer, seq)

    async def send_control(self, frame_type: int, peer: bytes = ZERO_ID) -> None:
        """An authenticated CLAIM or RELEASE, as a well-behaved device sends it."""
        await self.send(frame_type, peer, self.control_payload(frame_type, peer))

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def recv(self, wait_s: float = 5.0) -> Frame:
        msg = await self.ws.receive(timeout=wait_s)
        assert msg.type is aiohttp.WSMsgType.BINARY, (msg.type, msg.data, self.ws.close_code)
        data: bytes = msg.data
        return Frame(data[0], data[1:11], data[11:])

    async def expect(
        self, frame_type: int, peer: bytes | None = None, payload: bytes | None = None
    ) -> Frame:
        frame = await self.recv()
        assert frame.type == frame_type, frame
        if peer is not None:
            assert frame.peer == peer, frame
        if payload is not None:
            assert frame.payload == payload, frame
        return frame

    async def expect_silence(self, wait_s: float = 0.3) -> None:
        try:
            msg = await self.ws.receive(timeout=wait_s)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {msg.type} {msg.data!r}")

    async def expect_close(self, code: int, wait_s: float = 5.0) -> list[Frame]:
        """Read until the relay closes; return frames received before; check the code."""
        frames: list[Frame] = []
        async with asyncio.timeout(wait_s):
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.BINARY:
                    frames.append(Frame(msg.data[0], msg.data[1:11], msg.data[11:]))
                    continue
                break
        # The code the relay sent (a CLOSE message), else what the client recorded.
        got = msg.data if msg.type is aiohttp.WSMsgType.CLOSE else self.ws.close_code
        assert got == code, (got, self.ws.close_code, msg)
        return frames

    async def close(self) -> None:
        await self.ws.close()


async def open_ws(
    http: aiohttp.ClientSession,
    url: str,
    token: str | None = None,
    protocols: tuple[str, ...] = ("homeseal.v1",),
    **kwargs: Any,
) -> Link:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs.setdefault("autoping", True)
    ws = await http.ws_connect(url, protocols=protocols, headers=headers, max_msg_size=0, **kwargs)
    link = Link(ws)
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.BINARY, msg
    assert msg.data[0] == AUTH_CHALLENGE, msg.data
    assert len(msg.data) == 75, msg.data
    link.challenge = msg.data
    return link


async def connect(
    http: aiohttp.ClientSession,
    base: str,
    endpoint: Endpoint,
    token: str | None = None,
    **kwargs: Any,
) -> Link:
    """Open the endpoint's websocket and authenticate; AUTH_OK is consumed and checked."""
    path = "/ws/device" if endpoint.role == ROLE_DEVICE else "/ws/controller"
    link = await open_ws(http, base + path, token, **kwargs)
    await link.send_raw(endpoint.respond(link.challenge))
    ok = await link.recv()
    assert ok.type == AUTH_OK, ok
    if endpoint.role == ROLE_DEVICE:
        link.k_ctl = endpoint.control_key(link.challenge)
    link.auth_flags = ok.payload  # type: ignore[attr-defined]
    return link


async def pair_and_claim(ctl: Link, ctl_id: bytes, dev: Link, dev_id: bytes) -> None:
    """The relay-visible part of a pairing: PAIR_START, PAIR both ways, CLAIM → CLAIMED.

    The payloads stand in for SPAKE2+ messages; the relay must pass them untouched.
    """
    await ctl.send(PAIR_START, dev_id, b"\x01\x01")
    await dev.expect(PAIR_START, ctl_id, b"\x01\x01")
    await dev.send(PAIR, ctl_id, b"\x02params")
    await ctl.expect(PAIR, dev_id, b"\x02params")
    await ctl.send(PAIR, dev_id, b"\x03" + bytes(65))
    await dev.expect(PAIR, ctl_id, b"\x03" + bytes(65))
    await dev.send_control(CLAIM, ctl_id)
    await dev.expect(CLAIMED, ctl_id, b"")
    await ctl.expect(PRESENCE, dev_id, b"\x01")
