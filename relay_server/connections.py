"""The relay's connections, one type per role, and the one way the relay closes them.

- `Conn`: one upgraded websocket, authenticated or not: its transport, how the
  relay writes a frame it built itself (`send`), and its close state.
- `DeviceConn`, `ControllerConn`: an authenticated endpoint of each role (PROTOCOL §4),
  with only the fields that role has. Both carry the relay headers of the frames
  they are the source of (type ‖ own id) and the frame budget they draw on.
- `Closer`: every close the relay initiates, pending and authenticated connections
  alike: counted, with the code's name as reason (§2), the close handshake bounded,
  then the transport cut.

Also `Role` (an endpoint's label and its byte in §4) and `WS_HEADER`, the prebuilt
websocket header of every frame length the relay sends.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Final, final

from aiohttp import web

from homeseal_protocol import relay_auth
from homeseal_protocol.envelope import MAX_FRAME, CloseCode, FrameType

from .accounts import TokenGrant
from .ratelimit import Bucket
from .stats import Stats

# A peer that does not finish the close handshake within this is cut off.
CLOSE_GRACE_S: Final = 3.0

# Unmasked server→client websocket header (FIN + binary) for every frame length
# the relay can send: frames are at most MAX_FRAME bytes.
WS_HEADER: Final = tuple(
    b"\x82" + (bytes((n,)) if n < 126 else b"\x7e" + n.to_bytes(2, "big"))
    for n in range(MAX_FRAME + 1)
)


class Role(StrEnum):
    """An endpoint's role: its label in logs and metrics, and its byte in §4's MAC."""

    DEVICE = "device"
    CONTROLLER = "controller"

    @property
    def auth_byte(self) -> int:
        return relay_auth.ROLE_DEVICE if self is Role.DEVICE else relay_auth.ROLE_CONTROLLER


class Conn:
    """One upgraded websocket; before authentication it is only this."""

    __slots__ = ("close_code", "close_task", "protocol", "transport", "ws")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.transport: asyncio.Transport | None = request.transport
        self.protocol = request.protocol
        self.close_code: CloseCode | None = None
        self.close_task: asyncio.Task[None] | None = None

    def send(self, frame: bytes) -> None:
        """Write one frame the relay built itself (small, rare); nothing once closing."""
        transport = self.transport
        if (
            self.close_code is None
            and transport is not None
            and not transport.is_closing()
            and not self.ws.closed
        ):
            transport.write(WS_HEADER[len(frame)] + frame)


class EndpointConn(Conn):
    """An authenticated endpoint on the websocket of `link` (which it replaces)."""

    __slots__ = ("bucket", "endpoint_id", "tag_pair", "tag_session")

    def __init__(self, link: Conn, endpoint_id: bytes, bucket: Bucket) -> None:
        self.ws = link.ws
        self.transport = link.transport
        self.protocol = link.protocol
        # A close begun before registration (a shutdown) carries over.
        self.close_code = link.close_code
        self.close_task = link.close_task
        self.endpoint_id = endpoint_id
        self.bucket = bucket
        # Relay headers of the frames this endpoint is the source of: type ‖ own id.
        self.tag_session = bytes((FrameType.SESSION,)) + endpoint_id
        self.tag_pair = bytes((FrameType.PAIR,)) + endpoint_id


@final
class DeviceConn(EndpointConn):
    """A device: its owner account (None while unclaimed), its own frame budget, its
    pairing peers (controller id → account, §3.2), and §4.1's control key with the seq
    of its last authenticated CLAIM/RELEASE."""

    __slots__ = ("control_key", "control_seq", "owner", "pairing_peers")

    def __init__(
        self, link: Conn, endpoint_id: bytes, bucket: Bucket, control_key: bytes, owner: int | None
    ) -> None:
        super().__init__(link, endpoint_id, bucket)
        self.owner = owner
        self.pairing_peers: dict[bytes, int] = {}
        self.control_key = control_key
        self.control_seq = 0


@final
class ControllerConn(EndpointConn):
    """A controller: its account and token (the frame budget is the account's, shared
    by its controllers), and the timer that closes it when the token expires."""

    __slots__ = ("account_id", "expiry", "tag_pair_start", "token_hash")

    def __init__(self, link: Conn, endpoint_id: bytes, bucket: Bucket, grant: TokenGrant) -> None:
        super().__init__(link, endpoint_id, bucket)
        self.account_id = grant.account_id
        self.token_hash = grant.token_hash
        self.expiry: asyncio.TimerHandle | None = None
        self.tag_pair_start = bytes((FrameType.PAIR_START,)) + endpoint_id


class Closer:
    """Closes connections from outside their read loop, and waits for those closes."""

    def __init__(self, stats: Stats) -> None:
        self._stats = stats
        self._tasks: set[asyncio.Task[None]] = set()

    def close(self, conn: Conn, code: CloseCode) -> None:
        """Start closing `conn` with `code` (once: later calls keep the first code)."""
        if conn.close_code is not None:
            return
        conn.close_code = code
        self._stats.closed(code)
        task = asyncio.get_running_loop().create_task(_close(conn.ws, conn.transport, code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        conn.close_task = task

    async def wait(self) -> None:
        """Until every close started so far has finished."""
        if self._tasks:
            await asyncio.wait(list(self._tasks))


async def _close(
    ws: web.WebSocketResponse, transport: asyncio.Transport | None, code: CloseCode
) -> None:
    try:
        async with asyncio.timeout(CLOSE_GRACE_S):
            await ws.close(code=code, message=code.reason)
    except (TimeoutError, ConnectionError):
        pass
    finally:
        # A peer that does not read its close frame in time is cut off.
        if transport is not None and not transport.is_closing():
            transport.abort()
