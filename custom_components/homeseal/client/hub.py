"""The controller side of one relay account: connection, device links and pairing.

No Home Assistant imports: the integration drives a Hub and listens to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from .api import SslSetting, websocket_url
from .connection import RelayConnection
from .devices import DeviceLink
from .envelope import Frame, FrameType
from .ids import format_id
from .pairing import ControllerPairing
from .pairing_driver import (
    STEP_TIMEOUT,
    PairingAttempt,
    PairingDeviceOffline,
    PairingInProgress,
    RunBlocking,
)
from .relay_auth import public_bytes
from .session import InitiatorSession

_LOGGER = logging.getLogger(__name__)


def private_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


class Hub:
    """Routes frames between one relay connection and the account's devices."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        static_key: X25519PrivateKey,
        ssl_setting: SslSetting,
        *,
        run_blocking: RunBlocking | None = None,
        on_key_mismatch: Callable[[DeviceLink, bytes], None] | None = None,
        on_describe: Callable[[DeviceLink], None] | None = None,
    ) -> None:
        self.static_key = static_key
        self.static_pub = public_bytes(static_key)
        self.connection = RelayConnection(
            session,
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
        self._on_key_mismatch = on_key_mismatch
        self._on_describe = on_describe
        self._pairing: PairingAttempt | None = None
        self.frames_dropped = 0
        self.pair_step_timeout = STEP_TIMEOUT

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def add_device(self, device_id: bytes, device_static_pub: bytes) -> DeviceLink:
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
            on_key_mismatch=self._on_key_mismatch,
            on_describe=self._on_describe,
        )
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

    def _on_frame(self, frame: Frame) -> None:
        link = self.links.get(frame.peer)
        match frame.type:
            case FrameType.SESSION if link is not None:
                link.session_frame(frame.payload)
            case FrameType.PRESENCE if link is not None and len(frame.payload) == 1:
                link.presence(frame.payload[0] == 1)
            case FrameType.PAIR if self._pairing and self._pairing.device_id == frame.peer:
                self._pairing.frame(frame.type, frame.payload)
            case FrameType.ERROR:
                if self._pairing is not None and self._pairing.device_id == frame.peer:
                    self._pairing.frame(frame.type, frame.payload)
                elif link is not None and frame.payload:
                    link.relay_error(frame.payload[0])
            case _:
                # Frames from unknown peers or out of place: the relay is not trusted,
                # so they are dropped, not acted on.
                self.frames_dropped += 1
                _LOGGER.debug("Dropped %s frame from %s", frame.type.name, format_id(frame.peer))

    async def pair(self, device_id: bytes, setup_code: str, connect_timeout: float = 10.0) -> bytes:
        """Run one pairing attempt; returns the device's pinned static public key."""
        if not await self.connection.wait_connected(connect_timeout):
            raise PairingDeviceOffline("not connected to the relay")
        if self._pairing is not None:
            raise PairingInProgress("a pairing attempt is already running")
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


__all__ = ["Hub"]
