"""The forwarding path (PROTOCOL §3.2): the hot path of the relay.

For each frame from an authenticated endpoint, `Forwarding.forward` reads the type
byte and the destination id by slicing, takes one token of the sender's frame
budget (every frame counts, refused and control ones included), checks the route,
and writes one websocket frame straight to the destination's transport: a prebuilt
websocket header, the 11-byte relay header naming the source, and the payload,
joined into one write (the only copy of the payload; see _forward). The
destination transport's write buffer is the bounded send queue: its high-water
mark is `send_queue_bytes`, and a destination that lets it fill up is a slow
consumer, closed with 4004 instead of buffering without bound.

A frame that cannot be forwarded is answered with ERROR (§3.1). What the read
loop does next is the frame's `Verdict`: read on, hand CLAIM/RELEASE to
control, or close with the verdict's close code.

The hot path compares plain ints held in module globals (the cheapest lookup in
CPython), which is why the library's enums are flattened below.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import Final

from homeseal_protocol.envelope import HEADER_LEN, CloseCode, FrameType, RelayError, encode_frame

from .config import Limits
from .connections import WS_HEADER, ControllerConn, DeviceConn, EndpointConn
from .ratelimit import KeyedLimiter
from .registry import Registry
from .stats import Stats


class Verdict(IntEnum):
    """What the read loop does after a frame. Those that end the connection are
    valued as their close code (`close_code`)."""

    HANDLED = 0  # forwarded, answered with ERROR or dropped: read the next frame
    CONTROL = 1  # CLAIM or RELEASE: await Control.handle for the verdict
    CLUSTER = 2  # PAIR_START on a cluster: await Cluster.pair_start for the verdict
    PROTOCOL_ERROR = CloseCode.PROTOCOL_ERROR
    AUTH_FAILED = CloseCode.AUTH_FAILED
    RATE_LIMITED = CloseCode.RATE_LIMITED

    @property
    def close_code(self) -> CloseCode:
        """The close code of a verdict that ends the connection."""
        return CloseCode(self.value)


HANDLED: Final = Verdict.HANDLED
CONTROL: Final = Verdict.CONTROL
CLUSTER: Final = Verdict.CLUSTER
PROTOCOL_ERROR: Final = Verdict.PROTOCOL_ERROR
RATE_LIMITED: Final = Verdict.RATE_LIMITED

SESSION: Final = int(FrameType.SESSION)
PAIR: Final = int(FrameType.PAIR)
PAIR_START: Final = int(FrameType.PAIR_START)
CONTROL_TYPES: Final = frozenset({int(FrameType.CLAIM), int(FrameType.RELEASE)})

# The drop counted with each ERROR answer (a per-device or per-account PAIR_START
# limit is not the connection's frame budget, whose drop is "rate_limited").
_ERROR_DROPS: Final = {
    RelayError.PEER_OFFLINE: "peer_offline",
    RelayError.NOT_PERMITTED: "not_permitted",
    RelayError.RATE_LIMITED: "pair_rate_limited",
    RelayError.NOT_CLAIMABLE: "not_claimable",
}


def answer_error(stats: Stats, conn: EndpointConn, dest_id: bytes, error: RelayError) -> None:
    """Answer a frame the relay will not forward with ERROR (peer id: its destination)."""
    stats.drop(_ERROR_DROPS[error])
    conn.send(encode_frame(FrameType.ERROR, dest_id, bytes((error,))))


class Forwarding:
    def __init__(self, registry: Registry, limits: Limits, clock: Callable[[], float]) -> None:
        self._registry = registry
        # The registry's own dicts (never rebound): one attribute lookup per frame.
        self._devices = registry.devices
        self._controllers = registry.controllers
        self._stats = registry.stats
        self._closer = registry.closer
        self._clock = clock
        # On a cluster: where a frame for an endpoint not on this node goes (the
        # cluster's `forward_remote`); None on a single node. Only read on that miss.
        self.remote: Callable[[DeviceConn | ControllerConn, bytes], None] | None = None
        # Keyed by (account, device): a stranger's starts never use up the budget another
        # account has for the same device.
        self._pair_per_account_device = KeyedLimiter(
            limits.pair_start_per_account_device,
            clock,
            limits.limiter_max_entries,
            limits.limiter_max_key_bytes,
        )
        self._pair_per_account = KeyedLimiter(
            limits.pair_start_per_account,
            clock,
            limits.limiter_max_entries,
            limits.limiter_max_key_bytes,
        )

    def forward(self, conn: DeviceConn | ControllerConn, data: bytes) -> Verdict:
        """Route one frame from an authenticated endpoint."""
        n = len(data)
        if n < HEADER_LEN:
            self._stats.drop("malformed")
            return PROTOCOL_ERROR
        if conn.bucket.take(self._clock()) > 0.0:
            self._stats.drop("rate_limited")
            return RATE_LIMITED

        frame_type = data[0]
        dst: EndpointConn | None
        if frame_type == SESSION:
            dest_id = data[1:11]
            if type(conn) is DeviceConn:
                dst = self._controllers.get(dest_id)
                # An unclaimed device's owner (None) never equals an account id.
                allowed = dst is not None and dst.account_id == conn.owner
            else:
                dst = self._devices.get(dest_id)
                allowed = dst is not None and dst.owner == conn.account_id
            tag = conn.tag_session
        elif frame_type == PAIR:
            dest_id = data[1:11]
            if type(conn) is DeviceConn:
                dst = self._controllers.get(dest_id)
                allowed = dst is not None and dest_id in conn.pairing_peers
            else:
                dst = self._devices.get(dest_id)
                allowed = dst is not None and (
                    dst.owner == conn.account_id or conn.endpoint_id in dst.pairing_peers
                )
            tag = conn.tag_pair
        elif frame_type == PAIR_START and type(conn) is ControllerConn:
            return self._pair_start(conn, data)
        elif frame_type in CONTROL_TYPES:
            return CONTROL
        else:
            self._stats.drop("protocol_error")
            return PROTOCOL_ERROR

        if dst is None:
            remote = self.remote
            if remote is None:
                answer_error(self._stats, conn, dest_id, RelayError.PEER_OFFLINE)
            else:
                remote(conn, data)  # perhaps on another node of the cluster
        elif not allowed:
            answer_error(self._stats, conn, dest_id, RelayError.NOT_PERMITTED)
        else:
            self._forward(dst, tag, data, n)
        return HANDLED

    def deliver(self, dst: EndpointConn, tag: bytes, data: bytes) -> None:
        """Write a frame that came from another node of the cluster (`tag`: its relay
        header, type ‖ source id) to `dst`, as `forward` would."""
        self._forward(dst, tag, data, len(data))

    def _forward(self, dst: EndpointConn, tag: bytes, data: bytes, n: int) -> None:
        transport = dst.transport
        if dst.close_code is not None or transport is None or transport.is_closing():
            self._stats.drop("peer_closing")
            return
        if dst.protocol.writing_paused:
            # Its send buffer is above the high-water mark: a slow consumer.
            self._stats.drop("slow_consumer")
            self._closer.close(dst, CloseCode.SLOW_CONSUMER)
            return
        # One write of header + payload. writelines() with a memoryview would avoid
        # this memcpy (≤ 4 KiB) but, in CPython 3.13, re-registers the socket with the
        # selector on every call, which costs more than the copy (15-20 % of the
        # relay's CPU per frame, measured with benchmarks/relay_bench.py).
        transport.write(b"".join((WS_HEADER[n], tag, memoryview(data)[HEADER_LEN:])))
        stats = self._stats
        stats.frames_routed += 1
        stats.bytes_routed += n

    def _pair_start(self, conn: ControllerConn, data: bytes) -> Verdict:
        """PAIR_START: to an unclaimed device (or one the account owns), within the
        per-(account, device) and per-account limits; the sender becomes a pairing peer.
        On a cluster the limits are Redis's: the cluster handles it (awaited)."""
        if self.remote is not None:
            return CLUSTER
        dest_id = data[1:11]
        dst = self._devices.get(dest_id)
        if dst is None:
            answer_error(self._stats, conn, dest_id, RelayError.PEER_OFFLINE)
        elif dst.owner is not None and dst.owner != conn.account_id:
            answer_error(self._stats, conn, dest_id, RelayError.NOT_PERMITTED)
        elif self._pair_per_account_device.take(
            (conn.account_id, dest_id)
        ) or self._pair_per_account.take(conn.account_id):
            answer_error(self._stats, conn, dest_id, RelayError.RATE_LIMITED)
        else:
            self._registry.add_pairing_peer(dst, conn)
            self._forward(dst, conn.tag_pair_start, data, len(data))
        return HANDLED
