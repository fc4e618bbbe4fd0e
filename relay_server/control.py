"""CLAIM and RELEASE (PROTOCOL §3.2, §4.1): the only frames that move ownership.

Each one is authenticated under its connection's control key before anything else:
a device's link may be plain ws://, and ownership must never move on a frame
someone on that link injected. A refused one closes the connection (4001) and
counts as an authentication failure. The new owner is durable in storage before
the relay acts on it or acknowledges it (CLAIMED).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final

from homeseal_protocol.envelope import HEADER_LEN, CloseCode, FrameType, RelayError, encode_frame
from homeseal_protocol.errors import RelayAuthError
from homeseal_protocol.ids import format_id
from homeseal_protocol.relay_auth import verify_control

from .connections import ControllerConn, DeviceConn, Role
from .forwarding import Verdict, answer_error
from .registry import Registry
from .storage import Storage

_LOG = logging.getLogger("relay_server.control")

_CLAIM: Final = int(FrameType.CLAIM)


class Control:
    def __init__(
        self, registry: Registry, storage: Storage, wall_clock: Callable[[], float]
    ) -> None:
        self._registry = registry
        self._storage = storage
        self._stats = registry.stats
        self._wall_clock = wall_clock

    async def handle(self, conn: DeviceConn | ControllerConn, data: bytes) -> Verdict:
        """Act on one CLAIM or RELEASE. The read loop awaits this, so the seq checks
        see a device's control frames in the order it sent them."""
        if isinstance(conn, ControllerConn):
            # A controller can never claim a device (§3): a frame out of place.
            self._stats.drop("protocol_error")
            return Verdict.PROTOCOL_ERROR
        frame_type, peer_id = data[0], data[1:HEADER_LEN]
        try:
            conn.control_seq = verify_control(
                conn.control_key, frame_type, peer_id, data[HEADER_LEN:], conn.control_seq
            )
        except RelayAuthError as err:
            self._stats.auth_failed(Role.DEVICE)
            self._registry.auth_log.log(
                f"{Role.DEVICE}/control",
                role=Role.DEVICE,
                code=int(CloseCode.AUTH_FAILED),
                stage="control",
                device_id=format_id(conn.endpoint_id),
                frame_type=frame_type,
                reason=str(err),
            )
            return Verdict.AUTH_FAILED
        if frame_type == _CLAIM:
            await self._claim(conn, peer_id)
        else:
            await self._release(conn)
        return Verdict.HANDLED

    async def _claim(self, conn: DeviceConn, controller_id: bytes) -> None:
        # The owner becomes the account of the pairing peer the device names.
        account_id = conn.pairing_peers.get(controller_id)
        if account_id is None:
            answer_error(self._stats, conn, controller_id, RelayError.NOT_CLAIMABLE)
            return
        await self._storage.claim_device(conn.endpoint_id, account_id, int(self._wall_clock()))
        _LOG.info(
            "device claimed",
            extra={"device_id": format_id(conn.endpoint_id), "account": account_id},
        )
        self._registry.set_owner(conn, account_id)
        conn.send(encode_frame(FrameType.CLAIMED, controller_id))

    async def _release(self, conn: DeviceConn) -> None:
        await self._storage.release_device(conn.endpoint_id)
        _LOG.info("device released", extra={"device_id": format_id(conn.endpoint_id)})
        self._registry.set_owner(conn, None)
