"""The router: who is connected, who may reach whom (PROTOCOL §3.2), and forwarding.

The forwarding path is the hot path of the relay. For each SESSION/PAIR frame
it reads the type byte and the destination id by slicing, checks the sender's
frame budget and the route, and writes one websocket frame straight to the
destination's transport: a prebuilt websocket header, the 11-byte relay header
naming the source, and the payload, joined into one write (the only copy of
the payload; see _forward). The destination transport's write buffer is the
bounded send queue: its high-water mark is `send_queue_bytes`, and a
destination that lets it fill up is a slow consumer, closed with 4004 instead
of buffering without bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from aiohttp import web

from . import auth
from . import envelope as env
from .config import Limits
from .ratelimit import Bucket, KeyedLimiter
from .storage import Storage

_LOG = logging.getLogger("relay_server.routing")

ROLE_DEVICE: Final = "device"
ROLE_CONTROLLER: Final = "controller"
# handle() result for CLAIM/RELEASE: the caller awaits control() for them.
NEEDS_STORAGE: Final = -1
# Pairing peers remembered per device (the controllers that sent PAIR_START last).
MAX_PAIRING_PEERS: Final = 4
# An unclaimed device's pairing peers outlive its connection this long (a pairing
# window), so a CLAIM lost with the connection can be sent again after reconnecting.
PAIRING_PEER_TTL_S: Final = 15 * 60
MAX_REMEMBERED_DEVICES: Final = 10_000
_CLOSE_GRACE_S: Final = 3.0

# Unmasked server→client websocket header (FIN + binary) for every frame length
# the relay can send: frames are at most MAX_FRAME bytes.
_WS_HEADER: Final = tuple(
    b"\x82" + (bytes((n,)) if n < 126 else b"\x7e" + n.to_bytes(2, "big"))
    for n in range(env.MAX_FRAME + 1)
)


class Conn:
    """One authenticated websocket connection (device or controller)."""

    __slots__ = (
        "account_id",
        "bucket",
        "close_code",
        "close_task",
        "control_key",
        "control_seq",
        "endpoint_id",
        "expiry",
        "owner",
        "pairing_peers",
        "protocol",
        "role",
        "tag_pair",
        "tag_session",
        "token_hash",
        "transport",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        role: str,
        endpoint_id: bytes,
    ) -> None:
        self.ws = ws
        self.transport: asyncio.Transport | None = request.transport
        self.protocol = request.protocol
        self.role = role
        self.endpoint_id = endpoint_id
        # Relay header of frames this endpoint is the source of: type ‖ own id.
        self.tag_session = bytes((env.SESSION,)) + endpoint_id
        self.tag_pair = bytes((env.PAIR,)) + endpoint_id
        self.account_id: int | None = None  # controllers: their account
        self.owner: int | None = None  # devices: the owner account, if claimed
        self.token_hash: str | None = None
        self.bucket: Bucket | None = None  # devices: their own frame budget
        self.pairing_peers: dict[bytes, int] = {}  # devices: controller id → account
        # Devices: k_ctl of §4.1 and the seq of the last authenticated CLAIM/RELEASE.
        self.control_key: bytes | None = None
        self.control_seq = 0
        self.close_code: int | None = None
        self.close_task: asyncio.Task[None] | None = None
        self.expiry: asyncio.TimerHandle | None = None

    def writable(self) -> bool:
        transport = self.transport
        return (
            self.close_code is None
            and transport is not None
            and not transport.is_closing()
            and not self.ws.closed
        )

    def send(self, frame: bytes) -> bool:
        """Write one relay frame built by the relay itself (small, rare)."""
        if not self.writable():
            return False
        assert self.transport is not None
        self.transport.write(_WS_HEADER[len(frame)] + frame)
        return True


@dataclass(slots=True)
class AccountState:
    """Live view of one account: its controller connections and online devices."""

    bucket: Bucket
    controllers: dict[bytes, Conn] = field(default_factory=dict)
    devices: set[bytes] = field(default_factory=set)


@dataclass(slots=True)
class Stats:
    """Plain counters, read by the metrics collector at scrape time (cheap to bump)."""

    frames_routed: int = 0
    bytes_routed: int = 0
    drops: dict[str, int] = field(default_factory=dict)
    auth_failures: dict[str, int] = field(default_factory=dict)
    closes: dict[int, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1


class Router:
    """Connection registry, presence, pairing peers and the routing rules."""

    def __init__(
        self,
        storage: Storage,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        self.devices: dict[bytes, Conn] = {}
        self.controllers: dict[bytes, Conn] = {}
        self.accounts: dict[int, AccountState] = {}
        self.stats = Stats()
        self._pair_per_device = KeyedLimiter(limits.pair_start_per_device, clock)
        self._pair_per_account = KeyedLimiter(limits.pair_start_per_account, clock)
        self._tasks: set[asyncio.Task[None]] = set()
        # Upgraded websockets still in the challenge-response (not yet a Conn).
        self.pending: set[web.WebSocketResponse] = set()
        self.shutting_down = False
        # device id → (pairing peers, when its connection ended); unclaimed devices only.
        self._remembered_peers: dict[bytes, tuple[dict[bytes, int], float]] = {}

    # --- registry -------------------------------------------------------------

    def _account(self, account_id: int) -> AccountState:
        state = self.accounts.get(account_id)
        if state is None:
            state = self.accounts[account_id] = AccountState(
                Bucket(self._limits.frames_per_account, self._clock())
            )
        return state

    def _forget_account_if_idle(self, account_id: int) -> None:
        state = self.accounts.get(account_id)
        if state is not None and not state.controllers and not state.devices:
            del self.accounts[account_id]

    def _prepare(self, conn: Conn) -> None:
        # The transport's write buffer is the bounded send queue (see module doc).
        if conn.transport is not None:
            conn.transport.set_write_buffer_limits(high=self._limits.send_queue_bytes)

    def add_device(self, conn: Conn, owner: int | None, auth_ok: bytes) -> None:
        """Register an authenticated device; AUTH_OK goes out before anything routed to it."""
        self._prepare(conn)
        conn.owner = owner
        conn.bucket = Bucket(self._limits.frames_per_device, self._clock())
        old = self.devices.get(conn.endpoint_id)
        if old is not None:
            self._detach_device(old, presence=False)
            self.close(old, env.CLOSE_REPLACED)
        conn.send(auth_ok)
        self.devices[conn.endpoint_id] = conn
        remembered = self._remembered_peers.pop(conn.endpoint_id, None)
        if owner is None and remembered is not None:
            peers, since = remembered
            if self._clock() - since < PAIRING_PEER_TTL_S:
                conn.pairing_peers.update(peers)
        if owner is not None:
            self._account(owner).devices.add(conn.endpoint_id)
            self._presence(owner, conn.endpoint_id, online=True)
        _LOG.info(
            "device connected",
            extra={"device_id": env.format_id(conn.endpoint_id), "claimed": owner is not None},
        )

    def add_controller(self, conn: Conn, account_id: int, token_hash: str, expires_at: int) -> int:
        """Register an authenticated controller; returns 0 or a close code (4006)."""
        state = self._account(account_id)
        old = state.controllers.get(conn.endpoint_id)
        if old is None and len(state.controllers) >= self._limits.connections_per_account:
            self._forget_account_if_idle(account_id)
            return env.CLOSE_TOO_MANY_CONNECTIONS
        self._prepare(conn)
        conn.account_id = account_id
        conn.token_hash = token_hash
        other = self.controllers.get(conn.endpoint_id)
        if other is not None:
            self._detach_controller(other)
            self.close(other, env.CLOSE_REPLACED)
            state = self._account(account_id)
        conn.send(env.build(env.AUTH_OK, env.ZERO_ID, b"\x00"))
        self.controllers[conn.endpoint_id] = conn
        state.controllers[conn.endpoint_id] = conn
        # Tell the new controller which of its devices are online right now.
        for device_id in state.devices:
            conn.send(env.build(env.PRESENCE, device_id, b"\x01"))
        delay = max(0.0, expires_at - self._wall_clock())
        conn.expiry = asyncio.get_running_loop().call_later(
            delay, self.close, conn, env.CLOSE_UNAUTHORIZED
        )
        _LOG.info(
            "controller connected",
            extra={"controller_id": env.format_id(conn.endpoint_id), "account": account_id},
        )
        return 0

    def remove(self, conn: Conn) -> None:
        """The connection's handler is done: drop it if it is still the registered one."""
        if conn.role == ROLE_DEVICE:
            if self.devices.get(conn.endpoint_id) is conn:
                self._detach_device(conn, presence=True)
                _LOG.info(
                    "device disconnected",
                    extra={"device_id": env.format_id(conn.endpoint_id), "code": conn.close_code},
                )
        elif self.controllers.get(conn.endpoint_id) is conn:
            self._detach_controller(conn)
            _LOG.info(
                "controller disconnected",
                extra={
                    "controller_id": env.format_id(conn.endpoint_id),
                    "code": conn.close_code,
                },
            )
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None

    def _detach_device(self, conn: Conn, *, presence: bool) -> None:
        if self.devices.get(conn.endpoint_id) is conn:
            del self.devices[conn.endpoint_id]
        if conn.owner is None and conn.pairing_peers:
            remembered = self._remembered_peers
            remembered.pop(conn.endpoint_id, None)
            if len(remembered) >= MAX_REMEMBERED_DEVICES:
                del remembered[next(iter(remembered))]  # the oldest
            remembered[conn.endpoint_id] = (dict(conn.pairing_peers), self._clock())
        owner = conn.owner
        if owner is not None:
            state = self.accounts.get(owner)
            if state is not None:
                state.devices.discard(conn.endpoint_id)
                if presence:
                    self._presence(owner, conn.endpoint_id, online=False)
                self._forget_account_if_idle(owner)

    def _detach_controller(self, conn: Conn) -> None:
        if self.controllers.get(conn.endpoint_id) is conn:
            del self.controllers[conn.endpoint_id]
        if conn.account_id is not None:
            state = self.accounts.get(conn.account_id)
            if state is not None and state.controllers.get(conn.endpoint_id) is conn:
                del state.controllers[conn.endpoint_id]
                self._forget_account_if_idle(conn.account_id)

    def _presence(self, account_id: int, device_id: bytes, *, online: bool) -> None:
        state = self.accounts.get(account_id)
        if state is None:
            return
        frame = env.build(env.PRESENCE, device_id, b"\x01" if online else b"\x00")
        for ctl in state.controllers.values():
            ctl.send(frame)

    # --- closing --------------------------------------------------------------

    def close(self, conn: Conn, code: int) -> None:
        """Close a connection from outside its handler (replaced, slow, revoked, shutdown)."""
        if conn.close_code is not None:
            return
        conn.close_code = code
        self.stats.closes[code] = self.stats.closes.get(code, 0) + 1
        conn.close_task = self._spawn_close(conn.ws, conn.transport, code)

    def _spawn_close(
        self, ws: web.WebSocketResponse, transport: asyncio.Transport | None, code: int
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._close(ws, transport, code))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @staticmethod
    async def _close(
        ws: web.WebSocketResponse, transport: asyncio.Transport | None, code: int
    ) -> None:
        try:
            async with asyncio.timeout(_CLOSE_GRACE_S):
                await ws.close(code=code, message=env.CLOSE_REASONS.get(code, b""))
        except (TimeoutError, ConnectionError):
            pass
        finally:
            # A peer that does not read its close frame in time is cut off.
            if transport is not None and not transport.is_closing():
                transport.abort()

    async def close_all(self, code: int) -> None:
        """Graceful shutdown: tell every peer (1012) and wait for the close handshakes."""
        self.shutting_down = True
        for conn in [*self.devices.values(), *self.controllers.values()]:
            self.close(conn, code)
        for ws in list(self.pending):
            self._spawn_close(ws, None, code)
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks))

    # --- the forwarding path ------------------------------------------------------

    def handle(self, conn: Conn, data: bytes) -> int:
        """Route one frame from an authenticated endpoint.

        Returns 0, a close code for the sender, or NEEDS_STORAGE (CLAIM/RELEASE).
        """
        n = len(data)
        if n < env.HEADER_LEN:
            self.stats.drop("malformed")
            return env.CLOSE_PROTOCOL_ERROR
        frame_type = data[0]
        is_device = conn.role == ROLE_DEVICE
        if is_device:
            bucket = conn.bucket
        else:
            state = self.accounts.get(conn.account_id)  # type: ignore[arg-type]
            bucket = state.bucket if state is not None else None
        if bucket is None or bucket.take(self._clock()) > 0.0:
            self.stats.drop("rate_limited")
            return env.CLOSE_RATE_LIMITED

        if frame_type == env.SESSION:
            dest_id = data[1:11]
            if is_device:
                dst = self.controllers.get(dest_id)
                allowed = (
                    dst is not None and conn.owner is not None and dst.account_id == conn.owner
                )
            else:
                dst = self.devices.get(dest_id)
                allowed = dst is not None and dst.owner == conn.account_id
            tag = conn.tag_session
        elif frame_type == env.PAIR:
            dest_id = data[1:11]
            if is_device:
                dst = self.controllers.get(dest_id)
                allowed = dst is not None and dest_id in conn.pairing_peers
            else:
                dst = self.devices.get(dest_id)
                allowed = dst is not None and (
                    dst.owner == conn.account_id or conn.endpoint_id in dst.pairing_peers
                )
            tag = conn.tag_pair
        elif frame_type == env.PAIR_START and not is_device:
            return self._pair_start(conn, data)
        elif is_device and frame_type in (env.CLAIM, env.RELEASE):
            return NEEDS_STORAGE
        else:
            self.stats.drop("protocol_error")
            return env.CLOSE_PROTOCOL_ERROR

        if dst is None:
            self._error(conn, dest_id, env.ERR_PEER_OFFLINE, "peer_offline")
            return 0
        if not allowed:
            self._error(conn, dest_id, env.ERR_NOT_PERMITTED, "not_permitted")
            return 0
        self._forward(dst, tag, data, n)
        return 0

    def _forward(self, dst: Conn, tag: bytes, data: bytes, n: int) -> None:
        transport = dst.transport
        if dst.close_code is not None or transport is None or transport.is_closing():
            self.stats.drop("peer_closing")
            return
        if dst.protocol.writing_paused:
            # Its send buffer is above the high-water mark: a slow consumer.
            self.stats.drop("slow_consumer")
            self.close(dst, env.CLOSE_SLOW_CONSUMER)
            return
        # One write of header + payload. writelines() with a memoryview would avoid
        # this memcpy (≤ 4 KiB) but, in CPython 3.13, re-registers the socket with the
        # selector on every call, which costs more than the copy (15-20 % of the
        # relay's CPU per frame, measured with benchmarks/relay_bench.py).
        transport.write(b"".join((_WS_HEADER[n], tag, memoryview(data)[env.HEADER_LEN :])))
        stats = self.stats
        stats.frames_routed += 1
        stats.bytes_routed += n

    def _error(self, conn: Conn, dest_id: bytes, code: int, reason: str) -> None:
        self.stats.drop(reason)
        conn.send(bytes((env.ERROR,)) + dest_id + bytes((code,)))

    def _pair_start(self, conn: Conn, data: bytes) -> int:
        dest_id = data[1:11]
        dst = self.devices.get(dest_id)
        if dst is None:
            self._error(conn, dest_id, env.ERR_PEER_OFFLINE, "peer_offline")
            return 0
        if dst.owner is not None and dst.owner != conn.account_id:
            self._error(conn, dest_id, env.ERR_NOT_PERMITTED, "not_permitted")
            return 0
        if self._pair_per_device.take(dest_id) or self._pair_per_account.take(conn.account_id):
            self._error(conn, dest_id, env.ERR_RATE_LIMITED, "pair_rate_limited")
            return 0
        assert conn.account_id is not None
        peers = dst.pairing_peers
        peers.pop(conn.endpoint_id, None)
        peers[conn.endpoint_id] = conn.account_id
        while len(peers) > MAX_PAIRING_PEERS:
            del peers[next(iter(peers))]
        self._forward(dst, bytes((env.PAIR_START,)) + conn.endpoint_id, data, len(data))
        return 0

    # --- frames that change ownership (durable before acknowledged) ---------------

    async def control(self, conn: Conn, data: bytes) -> int:
        frame_type, peer_id = data[0], data[1:11]
        # Authenticated under the connection's k_ctl (§4.1) before anything else: the
        # device's link may be plain ws://, and ownership must never move on a frame
        # someone on that link injected. The read loop awaits this, so seq checks
        # see the device's frames in order.
        try:
            if conn.control_key is None:
                raise auth.ControlAuthError("no control key on this connection")
            conn.control_seq = auth.verify_control(
                conn.control_key, frame_type, peer_id, data[env.HEADER_LEN :], conn.control_seq
            )
        except auth.ControlAuthError as err:
            self.stats.auth_failures[ROLE_DEVICE] = self.stats.auth_failures.get(ROLE_DEVICE, 0) + 1
            _LOG.warning(
                "unauthenticated control frame",
                extra={
                    "device_id": env.format_id(conn.endpoint_id),
                    "frame_type": frame_type,
                    "reason": str(err),
                },
            )
            return env.CLOSE_AUTH_FAILED
        if frame_type == env.CLAIM:
            account_id = conn.pairing_peers.get(peer_id)
            if account_id is None:
                self._error(conn, peer_id, env.ERR_NOT_CLAIMABLE, "not_claimable")
                return 0
            await self._storage.claim_device(conn.endpoint_id, account_id, int(self._wall_clock()))
            _LOG.info(
                "device claimed",
                extra={"device_id": env.format_id(conn.endpoint_id), "account": account_id},
            )
            self._set_owner(conn, account_id)
            conn.send(env.build(env.CLAIMED, peer_id))
            return 0
        # RELEASE
        await self._storage.release_device(conn.endpoint_id)
        _LOG.info("device released", extra={"device_id": env.format_id(conn.endpoint_id)})
        self._set_owner(conn, None)
        return 0

    def _set_owner(self, conn: Conn, owner: int | None) -> None:
        old = conn.owner
        if old == owner:
            return
        registered = self.devices.get(conn.endpoint_id) is conn
        if old is not None:
            state = self.accounts.get(old)
            if state is not None:
                state.devices.discard(conn.endpoint_id)
                if registered:
                    self._presence(old, conn.endpoint_id, online=False)
                self._forget_account_if_idle(old)
        conn.owner = owner
        if owner is not None and registered:
            self._account(owner).devices.add(conn.endpoint_id)
            self._presence(owner, conn.endpoint_id, online=True)

    # --- events from the HTTP API (AccountEvents) -----------------------------------

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        revoked = set(token_hashes)
        for conn in list(self.controllers.values()):
            if conn.token_hash in revoked:
                self.close(conn, env.CLOSE_UNAUTHORIZED)

    def account_deleted(self, account_id: int, devices: list[bytes]) -> None:
        state = self.accounts.get(account_id)
        if state is not None:
            for conn in list(state.controllers.values()):
                self.close(conn, env.CLOSE_UNAUTHORIZED)
        for device_id in devices:
            self.device_removed(device_id, account_id)
        for peers, _ in self._remembered_peers.values():
            for peer, acct in list(peers.items()):
                if acct == account_id:
                    del peers[peer]

    def device_removed(self, device_id: bytes, account_id: int) -> None:
        conn = self.devices.get(device_id)
        if conn is None:
            return
        # Drop its routes at once: ownership and any pairing peers of that account.
        for peer, acct in list(conn.pairing_peers.items()):
            if acct == account_id:
                del conn.pairing_peers[peer]
        if conn.owner == account_id:
            self._set_owner(conn, None)
        conn.send(env.build(env.REMOVED))
        _LOG.info("device removed", extra={"device_id": env.format_id(device_id)})

    def is_online(self, device_id: bytes) -> bool:
        return device_id in self.devices
