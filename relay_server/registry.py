"""Who is connected, and what follows from it (PROTOCOL §3.2).

The registry holds the registered device and controller connections (one per
endpoint id: a newer one replaces the older, 4002), the upgraded websockets still
in the challenge-response, each account's live state (its controller connections,
its online devices, the frame budget its controllers share), presence, and the
pairing peers: per device connection, and remembered for a while after an unclaimed
device's connection ends. `_move` is the one place an online device joins or leaves
an account's live state. It also holds the relay's `Stats`, the `Closer` that
every close goes through, and the summarised log of failed authentications.

It takes the account events of the HTTP API (`AccountEvents`: revoked tokens, a
deleted account, a removed device), so live connections follow the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from homeseal_protocol.envelope import ZERO_ID, CloseCode, FrameType, encode_frame
from homeseal_protocol.ids import format_id

from .accounts import TokenGrant
from .config import Limits
from .connections import Closer, Conn, ControllerConn, DeviceConn
from .logs import LogSummary
from .ratelimit import Bucket
from .stats import Stats

_LOG = logging.getLogger("relay_server.registry")
_AUTH_LOG = logging.getLogger("relay_server.auth")

# Pairing peers remembered per device (the controllers that sent PAIR_START last).
MAX_PAIRING_PEERS: Final = 4
# An unclaimed device's pairing peers outlive its connection this long (a pairing
# window), so a CLAIM lost with the connection can be sent again after reconnecting.
PAIRING_PEER_TTL_S: Final = 15 * 60
MAX_REMEMBERED_DEVICES: Final = 10_000

_ONLINE: Final = b"\x01"
_OFFLINE: Final = b"\x00"


class ClusterHooks(Protocol):
    """What a cluster node (relay_server.cluster) hears from its registry: endpoints
    registered and gone (presence keys) and PRESENCE changes (for other nodes'
    controllers). Never called on the forwarding path."""

    def added(self, conn: DeviceConn | ControllerConn) -> None: ...

    def removed(self, conn: DeviceConn | ControllerConn) -> None: ...

    def presence(self, account_id: int, device_id: bytes, online: bool) -> None: ...


@dataclass(slots=True)
class AccountState:
    """Live view of one account: its controller connections and online devices."""

    bucket: Bucket
    controllers: dict[bytes, ControllerConn] = field(default_factory=dict)
    devices: set[bytes] = field(default_factory=set)


class Registry:
    def __init__(
        self,
        limits: Limits,
        stats: Stats,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._wall_clock = wall_clock
        self.stats = stats
        # How every connection is closed, by the registry and everyone else.
        self.closer = Closer(stats)
        # Failed authentications (§4, §4.1): a flood of them logs a few lines a minute.
        self.auth_log = LogSummary(_AUTH_LOG, logging.WARNING, "authentication failed")
        self.devices: dict[bytes, DeviceConn] = {}
        self.controllers: dict[bytes, ControllerConn] = {}
        self.accounts: dict[int, AccountState] = {}
        # Upgraded websockets still in the challenge-response.
        self.pending: set[Conn] = set()
        # device id → (pairing peers, when its connection ended); unclaimed devices only.
        self._remembered_peers: dict[bytes, tuple[dict[bytes, int], float]] = {}
        # On a cluster: the node's hooks, and the account frame budgets it leases.
        self.cluster: ClusterHooks | None = None
        self.account_bucket: Callable[[int], Bucket] = lambda account_id: Bucket(
            limits.frames_per_account, clock()
        )

    def connections(self) -> list[Conn]:
        """Every open connection, registered or pending."""
        return [*self.devices.values(), *self.controllers.values(), *self.pending]

    def is_online(self, device_id: bytes) -> bool:
        return device_id in self.devices

    # --- connections come and go ----------------------------------------------

    def add_device(
        self, link: Conn, device_id: bytes, control_key: bytes, owner: int | None
    ) -> DeviceConn:
        """Register an authenticated device; AUTH_OK goes out before anything routed to it."""
        bucket = Bucket(self._limits.frames_per_device, self._clock())
        conn = DeviceConn(link, device_id, bucket, control_key, owner)
        self._bound_send_queue(conn)
        old = self.devices.get(device_id)
        if old is not None:
            # No offline in between: the new connection announces the device again.
            self._detach_device(old, announce=False)
            self.closer.close(old, CloseCode.REPLACED)
        claimed = b"\x01" if owner is not None else b"\x00"  # AUTH_OK flags, bit 0
        conn.send(encode_frame(FrameType.AUTH_OK, ZERO_ID, claimed))
        self.devices[device_id] = conn
        remembered = self._remembered_peers.pop(device_id, None)
        if owner is None and remembered is not None:
            peers, since = remembered
            if self._clock() - since < PAIRING_PEER_TTL_S:
                conn.pairing_peers.update(peers)
        self._move(device_id, None, owner, announce=True)
        if self.cluster is not None:
            self.cluster.added(conn)
        _LOG.info(
            "device connected",
            extra={"device_id": format_id(device_id), "claimed": owner is not None},
        )
        return conn

    def add_controller(
        self, link: Conn, controller_id: bytes, grant: TokenGrant
    ) -> ControllerConn | CloseCode:
        """Register an authenticated controller, or refuse it (4006: its account's cap)."""
        account_id = grant.account_id
        state = self._account(account_id)
        if (
            controller_id not in state.controllers
            and len(state.controllers) >= self._limits.connections_per_account
        ):
            self._forget_account_if_idle(account_id)
            return CloseCode.TOO_MANY_CONNECTIONS
        old = self.controllers.get(controller_id)
        if old is not None:
            self._detach_controller(old)
            self.closer.close(old, CloseCode.REPLACED)
            state = self._account(account_id)  # detaching may have forgotten it
        conn = ControllerConn(link, controller_id, state.bucket, grant)
        self._bound_send_queue(conn)
        conn.send(encode_frame(FrameType.AUTH_OK, ZERO_ID, b"\x00"))
        self.controllers[controller_id] = conn
        state.controllers[controller_id] = conn
        # Tell the new controller which of its devices are online right now.
        for device_id in state.devices:
            conn.send(encode_frame(FrameType.PRESENCE, device_id, _ONLINE))
        delay = max(0.0, grant.expires_at - self._wall_clock())
        conn.expiry = asyncio.get_running_loop().call_later(
            delay, self.closer.close, conn, CloseCode.UNAUTHORIZED
        )
        if self.cluster is not None:
            self.cluster.added(conn)
        _LOG.info(
            "controller connected",
            extra={"controller_id": format_id(controller_id), "account": account_id},
        )
        return conn

    def remove(self, conn: DeviceConn | ControllerConn) -> None:
        """The connection's handler is done: drop it if it is still the registered one."""
        if isinstance(conn, DeviceConn):
            if self.devices.get(conn.endpoint_id) is conn:
                self._detach_device(conn, announce=True)
                if self.cluster is not None:
                    self.cluster.removed(conn)
                _LOG.info(
                    "device disconnected",
                    extra={"device_id": format_id(conn.endpoint_id), "code": conn.close_code},
                )
            return
        if conn.expiry is not None:
            conn.expiry.cancel()
            conn.expiry = None
        if self.controllers.get(conn.endpoint_id) is conn:
            self._detach_controller(conn)
            if self.cluster is not None:
                self.cluster.removed(conn)
            _LOG.info(
                "controller disconnected",
                extra={"controller_id": format_id(conn.endpoint_id), "code": conn.close_code},
            )

    def replaced_elsewhere(self, conn: DeviceConn | ControllerConn) -> None:
        """A newer connection for the same endpoint registered on another node of the
        cluster: drop this one without an offline announcement (the new one announced
        itself) and close it with 4002, as a replacement on this node does."""
        if isinstance(conn, DeviceConn):
            if self.devices.get(conn.endpoint_id) is conn:
                self._detach_device(conn, announce=False)
        elif self.controllers.get(conn.endpoint_id) is conn:
            if conn.expiry is not None:
                conn.expiry.cancel()
                conn.expiry = None
            self._detach_controller(conn)
        self.closer.close(conn, CloseCode.REPLACED)

    def _bound_send_queue(self, conn: Conn) -> None:
        # The transport's write buffer is the bounded send queue: a destination above
        # its high-water mark is a slow consumer (see forwarding).
        if conn.transport is not None:
            conn.transport.set_write_buffer_limits(high=self._limits.send_queue_bytes)

    def _detach_device(self, conn: DeviceConn, *, announce: bool) -> None:
        """Unregister a registered device connection."""
        device_id = conn.endpoint_id
        if conn.owner is None and conn.pairing_peers:
            remembered = self._remembered_peers
            remembered.pop(device_id, None)
            if len(remembered) >= MAX_REMEMBERED_DEVICES:
                del remembered[next(iter(remembered))]  # the oldest
            remembered[device_id] = (conn.pairing_peers, self._clock())
        self._move(device_id, conn.owner, None, announce=announce)
        del self.devices[device_id]

    def _detach_controller(self, conn: ControllerConn) -> None:
        """Unregister a registered controller connection."""
        del self.controllers[conn.endpoint_id]
        state = self.accounts.get(conn.account_id)
        if state is not None and state.controllers.get(conn.endpoint_id) is conn:
            del state.controllers[conn.endpoint_id]
            self._forget_account_if_idle(conn.account_id)

    # --- accounts' live state -------------------------------------------------

    def _account(self, account_id: int) -> AccountState:
        state = self.accounts.get(account_id)
        if state is None:
            state = self.accounts[account_id] = AccountState(self.account_bucket(account_id))
        return state

    def _forget_account_if_idle(self, account_id: int) -> None:
        state = self.accounts.get(account_id)
        if state is not None and not state.controllers and not state.devices:
            del self.accounts[account_id]

    def set_owner(self, conn: DeviceConn, owner: int | None) -> None:
        """The device's owner account becomes `owner` (None: unclaimed): on CLAIM,
        RELEASE, removal and the owner's deletion."""
        old, conn.owner = conn.owner, owner
        # A connection that is no longer registered has left its account's live state
        # already (and its successor may have joined it).
        if self.devices.get(conn.endpoint_id) is conn:
            self._move(conn.endpoint_id, old, owner, announce=True)

    def _move(self, device_id: bytes, old: int | None, new: int | None, *, announce: bool) -> None:
        """The one place an online device leaves an account's live state or joins one
        (connecting, disconnecting, `set_owner`). With `announce`, the accounts'
        controllers get PRESENCE for it."""
        if old == new:
            return
        if old is not None:
            state = self.accounts.get(old)
            if state is not None:
                state.devices.discard(device_id)
                if announce:
                    self._presence(state, device_id, _OFFLINE)
                self._forget_account_if_idle(old)
            if announce and self.cluster is not None:
                self.cluster.presence(old, device_id, False)
        if new is not None:
            state = self._account(new)
            state.devices.add(device_id)
            if announce:
                self._presence(state, device_id, _ONLINE)
                if self.cluster is not None:
                    self.cluster.presence(new, device_id, True)

    @staticmethod
    def _presence(state: AccountState, device_id: bytes, online: bytes) -> None:
        frame = encode_frame(FrameType.PRESENCE, device_id, online)
        for ctl in state.controllers.values():
            ctl.send(frame)

    def announce_remote(self, account_id: int, device_id: bytes, online: bool) -> None:
        """PRESENCE for a device on another node of the cluster, to this node's
        controllers of `account_id`."""
        state = self.accounts.get(account_id)
        if state is not None:
            self._presence(state, device_id, _ONLINE if online else _OFFLINE)

    def add_pairing_peer(self, device: DeviceConn, controller: ControllerConn) -> None:
        """`controller` sent `device` an accepted PAIR_START: the newest of its peers."""
        self.add_pairing_peer_id(device, controller.endpoint_id, controller.account_id)

    def add_pairing_peer_id(
        self, device: DeviceConn, controller_id: bytes, account_id: int
    ) -> None:
        """The same, for a controller known by id and account (on another node)."""
        peers = device.pairing_peers
        peers.pop(controller_id, None)
        peers[controller_id] = account_id
        while len(peers) > MAX_PAIRING_PEERS:
            del peers[next(iter(peers))]

    # --- events from the HTTP API (AccountEvents) ------------------------------

    def tokens_revoked(self, token_hashes: list[str]) -> None:
        revoked = set(token_hashes)
        for conn in list(self.controllers.values()):
            if conn.token_hash in revoked:
                self.closer.close(conn, CloseCode.UNAUTHORIZED)

    def account_deleted(self, account_id: int, devices: list[bytes]) -> None:
        state = self.accounts.get(account_id)
        if state is not None:
            for conn in list(state.controllers.values()):
                self.closer.close(conn, CloseCode.UNAUTHORIZED)
        for device_id in devices:
            self.device_removed(device_id, account_id)
        for peers, _ in self._remembered_peers.values():
            _forget_peers_of(peers, account_id)

    def device_removed(self, device_id: bytes, account_id: int) -> None:
        conn = self.devices.get(device_id)
        if conn is None:
            return
        # Drop its routes at once: ownership and any pairing peers of that account.
        _forget_peers_of(conn.pairing_peers, account_id)
        if conn.owner == account_id:
            self.set_owner(conn, None)
        conn.send(encode_frame(FrameType.REMOVED))
        _LOG.info("device removed", extra={"device_id": format_id(device_id)})


def _forget_peers_of(peers: dict[bytes, int], account_id: int) -> None:
    for peer, account in list(peers.items()):
        if account == account_id:
            del peers[peer]
