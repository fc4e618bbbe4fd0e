"""Test-side relay endpoints (PROTOCOL §2 to §7), built on the protocol library.

- `Endpoint`: a static key pair in a role, and its answer to an AUTH_CHALLENGE (§4).
- `Link`: one authenticated (or not yet) websocket to the relay, raw frames in and
  out, read on demand: the relay suite's tool for exact, frame-by-frame checks.
- `Controller`: a controller endpoint with its own HTTP session, whose frames are
  read in the background; it pairs (`ControllerPairing`, §5) and opens sessions
  (`SessionClient`: `InitiatorSession`, §6, with the messages of §7).

Frame types go by their §3 names (`SESSION`, `CLAIM` …): the members of
`homeseal_protocol.envelope.FrameType`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from homeseal_protocol.envelope import HEADER_LEN, SUBPROTOCOL, ZERO_ID, FrameType
from homeseal_protocol.errors import PairingError, SessionError
from homeseal_protocol.ids import endpoint_id
from homeseal_protocol.keys import public_bytes
from homeseal_protocol.messages import MAX_ID
from homeseal_protocol.pairing import ControllerPairing
from homeseal_protocol.relay_auth import (
    CHALLENGE_LEN,
    ROLE_CONTROLLER,
    ROLE_DEVICE,
    Answer,
    answer_challenge,
    control_payload,
)
from homeseal_protocol.session import InitiatorSession, Kind, ResetReason

__all__ = [
    "AUTH_CHALLENGE",
    "AUTH_OK",
    "AUTH_RESPONSE",
    "CLAIM",
    "CLAIMED",
    "ERROR",
    "PAIR",
    "PAIR_START",
    "PRESENCE",
    "RELEASE",
    "REMOVED",
    "ROLE_CONTROLLER",
    "ROLE_DEVICE",
    "SESSION",
    "ZERO_ID",
    "Controller",
    "Endpoint",
    "Frame",
    "Link",
    "SessionClient",
    "connect",
    "open_ws",
    "pair_and_claim",
]

AUTH_CHALLENGE = FrameType.AUTH_CHALLENGE
AUTH_RESPONSE = FrameType.AUTH_RESPONSE
AUTH_OK = FrameType.AUTH_OK
PAIR_START = FrameType.PAIR_START
PAIR = FrameType.PAIR
SESSION = FrameType.SESSION
CLAIM = FrameType.CLAIM
CLAIMED = FrameType.CLAIMED
RELEASE = FrameType.RELEASE
REMOVED = FrameType.REMOVED
PRESENCE = FrameType.PRESENCE
ERROR = FrameType.ERROR

CHALLENGE_FRAME_LEN = HEADER_LEN + CHALLENGE_LEN


class Frame(NamedTuple):
    """One frame as received: raw type byte, peer id, payload (tests send any bytes)."""

    type: int
    peer: bytes
    payload: bytes

    @classmethod
    def parse(cls, data: bytes) -> Frame:
        return cls(data[0], bytes(data[1:HEADER_LEN]), bytes(data[HEADER_LEN:]))


class Endpoint:
    """A static X25519 key pair in a role (ROLE_DEVICE or ROLE_CONTROLLER)."""

    def __init__(self, role: int, private: X25519PrivateKey | None = None) -> None:
        self.role = role
        self.private = private or X25519PrivateKey.generate()
        self.pub = public_bytes(self.private)
        self.id = endpoint_id(self.pub)

    def answer(self, challenge: bytes) -> Answer:
        """§4 for an AUTH_CHALLENGE frame: the AUTH_RESPONSE payload and k_ctl."""
        return answer_challenge(self.private, challenge[HEADER_LEN:], self.role)

    def respond(self, challenge: bytes) -> bytes:
        """The whole AUTH_RESPONSE frame for an AUTH_CHALLENGE frame."""
        return bytes((AUTH_RESPONSE,)) + self.id + self.answer(challenge).response


class Link:
    """A websocket to the relay speaking relay frames, read on demand."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, challenge: bytes) -> None:
        self.ws = ws
        self.challenge = challenge  # the AUTH_CHALLENGE frame the relay opened with
        self.k_ctl = b""  # devices: set by connect()
        self.control_seq = 0  # seq of the last CLAIM/RELEASE sent on this connection
        self.auth_flags = b""  # the AUTH_OK payload

    async def send(self, frame_type: int, peer: bytes = ZERO_ID, payload: bytes = b"") -> None:
        await self.ws.send_bytes(bytes((frame_type,)) + peer + payload)

    def control_payload(self, frame_type: int, peer: bytes = ZERO_ID) -> bytes:
        """`seq ‖ mac` for the next CLAIM/RELEASE of this connection (§4.1); counts it."""
        assert self.k_ctl, "not an authenticated device connection"
        self.control_seq += 1
        return control_payload(self.k_ctl, frame_type, peer, self.control_seq)

    async def send_control(self, frame_type: int, peer: bytes = ZERO_ID) -> None:
        """An authenticated CLAIM or RELEASE, as a well-behaved device sends it."""
        await self.send(frame_type, peer, self.control_payload(frame_type, peer))

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def recv(self, wait_s: float = 5.0) -> Frame:
        msg = await self.ws.receive(timeout=wait_s)
        assert msg.type is aiohttp.WSMsgType.BINARY, (msg.type, msg.data, self.ws.close_code)
        return Frame.parse(msg.data)

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
                    frames.append(Frame.parse(msg.data))
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
    protocols: tuple[str, ...] = (SUBPROTOCOL,),
    **kwargs: Any,
) -> Link:
    """Open a websocket to `url` and read the relay's AUTH_CHALLENGE (not answered yet)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    kwargs.setdefault("autoping", True)
    ws = await http.ws_connect(url, protocols=protocols, headers=headers, max_msg_size=0, **kwargs)
    msg = await ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.BINARY, msg
    assert msg.data[0] == AUTH_CHALLENGE, msg.data
    assert len(msg.data) == CHALLENGE_FRAME_LEN, msg.data
    return Link(ws, msg.data)


async def connect(
    http: aiohttp.ClientSession,
    ws_base: str,
    endpoint: Endpoint,
    token: str | None = None,
    **kwargs: Any,
) -> Link:
    """Open the endpoint's websocket and authenticate; AUTH_OK is consumed and checked."""
    path = "/ws/device" if endpoint.role == ROLE_DEVICE else "/ws/controller"
    link = await open_ws(http, ws_base + path, token, **kwargs)
    answer = endpoint.answer(link.challenge)
    await link.send(AUTH_RESPONSE, endpoint.id, answer.response)
    ok = await link.recv()
    assert ok.type == AUTH_OK, ok
    if endpoint.role == ROLE_DEVICE:
        link.k_ctl = answer.control_key
    link.auth_flags = ok.payload
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


# ---------------------------------------------------------------- a controller


class Controller:
    """A controller endpoint of the account behind `token`, at the relay `base`
    (http://host:port, or https:// verified with `ssl_context`): relay
    authentication, then frames in the background."""

    def __init__(
        self,
        base: str,
        token: str,
        key: X25519PrivateKey | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base = base
        self.token = token
        self.ssl_context = ssl_context
        self.endpoint = Endpoint(ROLE_CONTROLLER, key)
        self.key = self.endpoint.private
        self.public = self.endpoint.pub
        self.id = self.endpoint.id
        self.link: Link | None = None
        self._http: aiohttp.ClientSession | None = None
        self._frames: asyncio.Queue[Frame] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.closed_code: int | None = None

    async def connect(self) -> Controller:
        self._http = aiohttp.ClientSession()
        ws_base = self.base.replace("http", "ws", 1)
        self.link = await connect(
            self._http,
            ws_base,
            self.endpoint,
            self.token,
            heartbeat=None,
            ssl=self.ssl_context or True,
        )
        self._reader = asyncio.create_task(self._read(self.link))
        return self

    async def _read(self, link: Link) -> None:
        async for msg in link.ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                self._frames.put_nowait(Frame.parse(msg.data))
        self.closed_code = link.ws.close_code

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._http is not None:
            await self._http.close()

    async def send(self, frame_type: int, peer: bytes, payload: bytes = b"") -> None:
        assert self.link is not None, "not connected"
        await self.link.send(frame_type, peer, payload)

    async def recv(self, types: Iterable[int], within: float = 10.0) -> Frame:
        """The next frame of one of `types` (others, e.g. PRESENCE, are skipped)."""
        wanted = set(types)
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no frame of types {wanted} within {within} s")
            try:
                frame = await asyncio.wait_for(self._frames.get(), left)
            except TimeoutError:
                continue
            if frame.type in wanted:
                return frame

    def drain(self) -> list[Frame]:
        out = []
        while not self._frames.empty():
            out.append(self._frames.get_nowait())
        return out

    async def pair(self, device_id: bytes, code: str) -> bytes:
        """Pair with the given setup code; returns the device's static key.

        Raises PairingError for a refusal (after telling the device, when the
        controller found the fault itself)."""
        attempt = ControllerPairing(device_id, self.key, code)
        await self.send(PAIR_START, device_id, attempt.start())
        while True:
            frame = await self.recv((PAIR, ERROR), within=20)
            if frame.type == ERROR:
                raise AssertionError(f"relay error {frame.payload[0]} during pairing")
            try:
                reply = attempt.receive(frame.payload)
            except PairingError as err:
                if err.reply:
                    await self.send(PAIR, device_id, err.reply)
                raise
            if reply is None:
                assert attempt.device_static_pub is not None
                return attempt.device_static_pub
            await self.send(PAIR, device_id, reply)

    async def open_session(
        self, device_id: bytes, device_pub: bytes, previous: SessionClient | None = None
    ) -> SessionClient:
        """A new session; `previous`: the session with the device it replaces."""
        session = SessionClient(self, device_id, device_pub)
        await session.open(previous=previous)
        return session


# Answers a device never gives to HANDSHAKE1, but that may still be in flight for the
# transport messages of an earlier session (after an attack on it); the earlier
# session's own transport messages are skipped too.
_LATE_RESETS = frozenset(
    bytes((Kind.RESET, reason))
    for reason in (ResetReason.NO_SESSION, ResetReason.PROTOCOL_ERROR, ResetReason.DECRYPT_FAILED)
)


class SessionClient:
    """An open Noise session with the device, plus the state it reported."""

    def __init__(self, ctl: Controller, device_id: bytes, device_pub: bytes) -> None:
        self.ctl = ctl
        self.device_id = device_id
        self.noise = InitiatorSession(ctl.key, device_pub, device_id, ctl.id)
        self.describe: dict[str, Any] | None = None
        self.state: dict[str, Any] = {}
        self.next_id = 1
        self.messages: list[dict[str, Any]] = []

    async def open(self, within: float = 10.0, previous: SessionClient | None = None) -> None:
        """Handshake and confirm (§6). The device speaks on the session it holds until
        our first message reaches it: with `previous` (that session), its last messages
        are read there; without, a device that pushes often may fail this."""
        hs1 = self.noise.start()
        for _ in range(20):
            await self.ctl.send(SESSION, self.device_id, hs1)
            frame_type, payload = await self._handshake_reply(within)
            if frame_type == SESSION:
                break
            # The relay records the claim just after PAIR_DONE reaches us, and the
            # device may still be reconnecting: not_permitted / peer_offline, retry.
            await asyncio.sleep(0.25)
        else:
            raise AssertionError("the relay kept refusing HANDSHAKE1")
        assert self.noise.receive(payload) is None
        # Our first message confirms the session; the device then describes itself,
        # reports its state and answers the ping (§6.2).
        await self.send_app({"t": "ping", "id": MAX_ID})  # commands count up from 1
        msg = await self._first_app(within, previous)
        assert msg["t"] == "describe", msg
        self.describe = msg
        msg = await self.recv_app(within)
        assert msg["t"] == "state", msg
        # A device that reports often may push a change before the pong.
        while (msg := await self.recv_app(within))["t"] == "state":
            pass
        assert msg == {"t": "pong", "id": MAX_ID}, msg

    async def _handshake_reply(self, within: float) -> tuple[int, bytes]:
        """The answer to HANDSHAKE1, skipping late RESETs (see _LATE_RESETS)."""
        while True:
            frame = await self.ctl.recv((SESSION, ERROR), within)
            if frame.type == SESSION and frame.payload[:2] in _LATE_RESETS:
                continue
            if frame.type == SESSION and frame.payload[:1] == bytes((Kind.TRANSPORT,)):
                continue  # the previous session's last messages (a state push)
            return frame.type, frame.payload

    async def _first_app(self, within: float, previous: SessionClient | None) -> dict[str, Any]:
        """The first message of this session, after what `previous` still receives."""
        if previous is None:
            return await self.recv_app(within)
        while True:
            frame = await self.ctl.recv((SESSION,), within)
            try:
                previous.noise.receive(frame.payload)
            except SessionError:  # not the previous session's: this one's first
                return self._app(frame.payload)
            # else the previous session's last words: read on

    async def recv_app(self, within: float = 10.0) -> dict[str, Any]:
        frame = await self.ctl.recv((SESSION,), within)
        return self._app(frame.payload)

    def _app(self, payload: bytes) -> dict[str, Any]:
        plaintext = self.noise.receive(payload)
        assert plaintext is not None
        msg: dict[str, Any] = json.loads(plaintext)
        self.messages.append(msg)
        if msg["t"] == "state":
            self.state.update(msg["s"])
        return msg

    async def send_app(self, msg: dict[str, Any]) -> None:
        await self.ctl.send(SESSION, self.device_id, self.noise.encrypt(json.dumps(msg).encode()))

    async def wait_for(self, t: str, within: float = 10.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            msg = await self.recv_app(max(0.05, deadline - time.monotonic()))
            if msg["t"] == t and all(msg.get(k) == v for k, v in fields.items()):
                return msg

    async def command(
        self, key: str, action: str, cid: int | None = None, **argument: Any
    ) -> dict[str, Any]:
        """`argument`: the action's one argument (brightness=, value=, option=), if any."""
        if cid is None:
            cid = self.next_id
            self.next_id += 1
        msg: dict[str, Any] = {"t": "command", "id": cid, "key": key, "action": action}
        msg.update({k: v for k, v in argument.items() if v is not None})
        await self.send_app(msg)
        return await self.wait_for("result", id=cid)
