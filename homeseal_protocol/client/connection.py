"""One websocket to the relay per controller (PROTOCOL §2, §4): authentication,
heartbeats, reconnect with jittered backoff, and dispatch of received frames."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Final

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..envelope import (
    MAX_FRAME,
    SUBPROTOCOL,
    CloseCode,
    Frame,
    FrameType,
    decode_frame,
    encode_frame,
)
from ..errors import (
    AuthRejected,
    EnvelopeError,
    NotConnected,
    RelayAuthError,
    RelayConnectionError,
)
from ..ids import endpoint_id
from ..keys import public_bytes
from ..relay_auth import ROLE_CONTROLLER, auth_response
from .api import SslSetting
from .backoff import reconnect_delay

_LOGGER = logging.getLogger(__name__)

AUTH_TIMEOUT: Final = 10.0
HEARTBEAT: Final = 20.0
# Close codes after which reconnecting cannot help without the user.
FATAL_CLOSE_CODES: Final = frozenset({CloseCode.AUTH_FAILED, CloseCode.UNAUTHORIZED})


class _ProtocolClose(RelayConnectionError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class RelayConnection:
    """Keeps one authenticated websocket to the relay open until stopped.

    `on_frame` gets every frame after authentication; `on_connected` is called with
    True once authenticated and with False when the connection is lost.
    """

    def __init__(  # noqa: PLR0917
        self,
        http: aiohttp.ClientSession,
        url: str,
        token: str,
        static_key: X25519PrivateKey,
        ssl_setting: SslSetting,
        on_frame: Callable[[Frame], None],
        on_connected: Callable[[bool], None],
    ) -> None:
        self._http = http
        self._url = url
        self.token = token
        self._static_key = static_key
        self.controller_id = endpoint_id(public_bytes(static_key))
        self._ssl = ssl_setting
        self._on_frame = on_frame
        self._on_connected = on_connected
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._connected = asyncio.Event()
        self.connected = False
        self.attempt = 0
        # Authenticated connections so far: a reconnect is seen even when it is
        # quicker than anyone polling `connected`.
        self.established = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; returns only by raising AuthRejected
        or being cancelled."""
        while True:
            try:
                await self._connect_once()
            except AuthRejected:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError, _ProtocolClose) as err:
                self.last_error = str(err) or type(err).__name__
                if self.attempt == 0:
                    _LOGGER.warning("Relay connection lost: %s", self.last_error)
                else:
                    _LOGGER.debug("Relay connection attempt failed: %s", self.last_error)
            delay = reconnect_delay(self.attempt)
            self.attempt += 1
            await asyncio.sleep(delay)

    async def wait_connected(self, time_limit: float) -> bool:
        try:
            async with asyncio.timeout(time_limit):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def send(self, frame_type: FrameType, peer: bytes, payload: bytes = b"") -> None:
        ws = self._ws
        if ws is None or not self.connected or ws.closed:
            raise NotConnected("not connected to the relay")
        try:
            await ws.send_bytes(encode_frame(frame_type, peer, payload))
        except (aiohttp.ClientError, ConnectionResetError, RuntimeError) as err:
            raise NotConnected(str(err)) from err

    async def close(self) -> None:
        if (ws := self._ws) is not None and not ws.closed:
            await ws.close(code=CloseCode.GOING_AWAY)

    async def _connect_once(self) -> None:
        try:
            ws = await self._http.ws_connect(
                self._url,
                protocols=(SUBPROTOCOL,),
                headers={"Authorization": f"Bearer {self.token}"},
                heartbeat=HEARTBEAT,
                max_msg_size=MAX_FRAME,
                ssl=self._ssl,
                timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            )
        except aiohttp.WSServerHandshakeError as err:
            if err.status in (401, 403):
                raise AuthRejected("the relay rejected the token") from err
            raise
        self._ws = ws
        try:
            await self._authenticate(ws)
            self.attempt = 0
            self.last_error = None
            self.established += 1
            self.connected = True
            self._connected.set()
            _LOGGER.info("Connected to the relay")
            self._on_connected(True)
            await self._serve(ws)
        finally:
            was_connected = self.connected
            self.connected = False
            self._connected.clear()
            self._ws = None
            if not ws.closed:
                await ws.close()
            if was_connected:
                self._on_connected(False)
        code = ws.close_code
        if code in FATAL_CLOSE_CODES:
            raise AuthRejected(f"the relay closed the connection with {code}")
        raise _ProtocolClose(code or 0, f"relay closed the connection ({code})")

    async def _receive_frame(self, ws: aiohttp.ClientWebSocketResponse) -> Frame | None:
        msg = await ws.receive()
        if msg.type == aiohttp.WSMsgType.BINARY:
            try:
                return decode_frame(msg.data)
            except EnvelopeError as err:
                await ws.close(code=err.close_code, message=b"protocol error")
                raise _ProtocolClose(err.close_code, str(err)) from err
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.close(code=CloseCode.PROTOCOL_ERROR, message=b"text message")
            raise _ProtocolClose(CloseCode.PROTOCOL_ERROR, "text message from relay")
        if msg.type == aiohttp.WSMsgType.ERROR:
            # aiohttp reports an oversized message this way and has closed with 1009.
            raise _ProtocolClose(CloseCode.TOO_BIG, f"websocket error: {msg.data}")
        return None  # CLOSE / CLOSING / CLOSED

    async def _authenticate(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async with asyncio.timeout(AUTH_TIMEOUT):
            frame = await self._receive_frame(ws)
            if frame is None:
                if ws.close_code in FATAL_CLOSE_CODES:
                    raise AuthRejected(f"the relay closed with {ws.close_code}")
                raise _ProtocolClose(ws.close_code or 0, "closed during authentication")
            if frame.type is not FrameType.AUTH_CHALLENGE:
                await ws.close(code=CloseCode.PROTOCOL_ERROR)
                raise _ProtocolClose(CloseCode.PROTOCOL_ERROR, "expected AUTH_CHALLENGE")
            try:
                response = auth_response(self._static_key, frame.payload, ROLE_CONTROLLER)
            except RelayAuthError as err:
                await ws.close(code=CloseCode.PROTOCOL_ERROR)
                raise _ProtocolClose(CloseCode.PROTOCOL_ERROR, str(err)) from err
            await ws.send_bytes(encode_frame(FrameType.AUTH_RESPONSE, self.controller_id, response))
            frame = await self._receive_frame(ws)
            if frame is None:
                if ws.close_code in FATAL_CLOSE_CODES:
                    raise AuthRejected(f"the relay closed with {ws.close_code}")
                raise _ProtocolClose(ws.close_code or 0, "closed during authentication")
            if frame.type is not FrameType.AUTH_OK:
                await ws.close(code=CloseCode.PROTOCOL_ERROR)
                raise _ProtocolClose(CloseCode.PROTOCOL_ERROR, "expected AUTH_OK")

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while (frame := await self._receive_frame(ws)) is not None:
            if frame.type in (FrameType.AUTH_CHALLENGE, FrameType.AUTH_OK):
                await ws.close(code=CloseCode.PROTOCOL_ERROR)
                raise _ProtocolClose(CloseCode.PROTOCOL_ERROR, "authentication frame out of place")
            try:
                self._on_frame(frame)
            except Exception:  # a bug above must not kill the connection
                _LOGGER.exception("Error handling a %s frame", frame.type.name)
