"""The controller side of one relay account (PROTOCOL §1 "controller"): the relay
connection, one DeviceLink per paired device, and pairing.

No Home Assistant imports: the integration drives a Controller and listens to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ..envelope import Frame, FrameType
from ..errors import PairingError, PairingFailure
from ..ids import format_id
from ..keys import private_bytes
from ..messages import Describe
from ..pairing import ControllerPairing
from ..session import InitiatorSession
from .api import SslSetting, websocket_url
from .connection import RelayConnection
from .device_link import NOT_RECOGNISED_AFTER, DeviceLink
from .pairing_attempt import STEP_TIMEOUT, PairingAttempt, RunBlocking

_LOGGER = logging.getLogger(__name__)


class Controller:
    """Routes frames between one relay connection and the account's devices."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        base_url: str,
        token: str,
        static_key: X25519PrivateKey,
        ssl_setting: SslSetting,
        *,
        run_blocking: RunBlocking | None = None,
        on_not_recognised: Callable[[DeviceLink], None] | None = None,
        on_describe: Callable[[DeviceLink], None] | None = None,
        not_recognised_after: float = NOT_RECOGNISED_AFTER,
    ) -> None:
        self.static_key = static_key
        self.not_recognised_after = not_recognised_after
        self.connection = RelayConnection(
            http,
            websocket_url(base_url),
            token,
            static_key,
            ssl_setting,
            self._on_frame,
            self._on_connected,
        )
        self.controller_id = self.connection.controller_id
        self.links: dict[bytes, DeviceLink] = {}
        self._run_blocking: RunBlocking = run_blocking or _to_thread
        self._on_not_recognised = on_not_recognised
        self._on_describe = on_describe
        self._pairing: PairingAttempt | None = None
        self._connection_listeners: list[Callable[[], None]] = []
        self.frames_dropped = 0
        self.pair_step_timeout = STEP_TIMEOUT

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def add_connection_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` whenever the relay connection comes up or goes down; returns
        the function that removes it."""
        self._connection_listeners.append(listener)
        return lambda: self._connection_listeners.remove(listener)

    def add_device(
        self, device_id: bytes, device_static_pub: bytes, describe: Describe | None = None
    ) -> DeviceLink:
        """Start a link to a paired device; `describe` is what it said last time (cached),
        so its entities exist before it is back."""
        if (link := self.links.get(device_id)) is not None:
            return link
        priv = private_bytes(self.static_key)

        def new_session() -> InitiatorSession:
            return InitiatorSession(priv, device_static_pub, device_id, self.controller_id)

        link = DeviceLink(
            device_id,
            device_static_pub,
            new_session,
            self._send_session,
            describe=describe,
            on_not_recognised=self._on_not_recognised,
            on_describe=self._on_describe,
        )
        link.not_recognised_after = self.not_recognised_after
        self.links[device_id] = link
        if self.connected:
            link.relay_up(immediate=True)  # a device just paired is most likely online
        return link

    def remove_device(self, device_id: bytes) -> None:
        if (link := self.links.pop(device_id, None)) is not None:
            link.stop()

    async def run(self) -> None:
        """Serve the relay connection until cancelled (raises AuthRejected)."""
        try:
            await self.connection.run()
        finally:
            for link in self.links.values():
                link.stop()

    async def close(self) -> None:
        await self.connection.close()

    async def _send_session(self, device_id: bytes, payload: bytes) -> None:
        await self.connection.send(FrameType.SESSION, device_id, payload)

    async def _send_frame(self, frame_type: FrameType, peer: bytes, payload: bytes) -> None:
        await self.connection.send(frame_type, peer, payload)

    def _on_connected(self, up: bool) -> None:
        for link in self.links.values():
            if up:
                link.relay_up()
            else:
                link.relay_down()
        for listener in list(self._connection_listeners):
            listener()

    def _on_frame(self, frame: Frame) -> None:
        link = self.links.get(frame.peer)
        pairing = self._pairing if self._pairing and self._pairing.device_id == frame.peer else None
        match frame.type:
            case FrameType.SESSION if link is not None:
                link.session_frame(frame.payload)
            case FrameType.PRESENCE if link is not None and len(frame.payload) == 1:
                link.presence(frame.payload[0] == 1)
            case FrameType.PAIR | FrameType.ERROR if pairing is not None:
                pairing.frame(frame.type, frame.payload)
            case FrameType.ERROR if link is not None and frame.payload:
                link.relay_error(frame.payload[0])
            case _:
                # Frames from unknown peers or out of place: the relay is not trusted,
                # so they are dropped, not acted on.
                self.frames_dropped += 1
                _LOGGER.debug("Dropped %s frame from %s", frame.type.name, format_id(frame.peer))

    async def pair(self, device_id: bytes, setup_code: str, connect_timeout: float = 10.0) -> bytes:
        """Run one pairing attempt; returns the device's pinned static public key.

        Raises PairingError (its `failure` says why)."""
        if not await self.connection.wait_connected(connect_timeout):
            raise PairingError(PairingFailure.DEVICE_OFFLINE, "not connected to the relay")
        if self._pairing is not None:
            raise PairingError(PairingFailure.IN_PROGRESS, "a pairing attempt is already running")
        pairing = ControllerPairing(device_id, private_bytes(self.static_key), setup_code)
        attempt = PairingAttempt(
            device_id, pairing, self._send_frame, self._run_blocking, self.pair_step_timeout
        )
        self._pairing = attempt
        try:
            return await attempt.run()
        finally:
            self._pairing = None


async def _to_thread(fn: Callable[[], bytes | None]) -> bytes | None:
    return await asyncio.to_thread(fn)
