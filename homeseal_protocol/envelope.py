"""Relay envelope (PROTOCOL §2, §3): one binary websocket message = type ‖ peer id ‖ payload.

This layer knows frame layout, which types travel in which direction, and the
relay's error and close codes; it never looks inside payloads. The relay, the
controller and the tools all build and split frames here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from .errors import EnvelopeError
from .ids import ID_LEN

SUBPROTOCOL: Final = "homeseal.v1"
MAX_FRAME: Final = 4096
HEADER_LEN: Final = 1 + ID_LEN
ZERO_ID: Final = bytes(ID_LEN)


class FrameType(IntEnum):
    """Frame types of §3."""

    AUTH_CHALLENGE = 0x01
    AUTH_RESPONSE = 0x02
    AUTH_OK = 0x03
    PAIR_START = 0x10
    PAIR = 0x11
    SESSION = 0x20
    CLAIM = 0x30
    CLAIMED = 0x31
    RELEASE = 0x32
    REMOVED = 0x33
    PRESENCE = 0x40
    ERROR = 0x41


class RelayError(IntEnum):
    """Codes carried by ERROR frames (§3.1)."""

    PEER_OFFLINE = 1
    NOT_PERMITTED = 2
    RATE_LIMITED = 3
    NOT_CLAIMABLE = 4


class CloseCode(IntEnum):
    """Websocket close codes (§2.1). The relay sends `reason` with each one it initiates."""

    NORMAL = 1000
    GOING_AWAY = 1001
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    RESTARTING = 1012
    PROTOCOL_ERROR = 4000
    AUTH_FAILED = 4001
    REPLACED = 4002
    AUTH_TIMEOUT = 4003
    SLOW_CONSUMER = 4004
    RATE_LIMITED = 4005
    TOO_MANY_CONNECTIONS = 4006
    UNAUTHORIZED = 4007

    @property
    def reason(self) -> bytes:
        """The close reason: the code's name from §2.1 (`slow_consumer`)."""
        return self.name.lower().encode("ascii")


# Frames each side may receive; anything else is a protocol error (§3).
CONTROLLER_INBOUND: Final = frozenset(
    {
        FrameType.AUTH_CHALLENGE,
        FrameType.AUTH_OK,
        FrameType.PAIR,
        FrameType.SESSION,
        FrameType.PRESENCE,
        FrameType.ERROR,
    }
)
DEVICE_INBOUND: Final = frozenset(
    {
        FrameType.AUTH_CHALLENGE,
        FrameType.AUTH_OK,
        FrameType.PAIR_START,
        FrameType.PAIR,
        FrameType.SESSION,
        FrameType.CLAIMED,
        FrameType.REMOVED,
        FrameType.ERROR,
    }
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame. `peer` is the destination from an endpoint, the source from
    the relay (§3)."""

    type: FrameType
    peer: bytes
    payload: bytes


def encode_frame(frame_type: int, peer: bytes = ZERO_ID, payload: bytes = b"") -> bytes:
    """Build one frame; refuses a bad peer id or an oversized payload."""
    if len(peer) != ID_LEN:
        raise EnvelopeError(f"peer id must be {ID_LEN} bytes")
    if HEADER_LEN + len(payload) > MAX_FRAME:
        raise EnvelopeError("frame exceeds MAX_FRAME", CloseCode.TOO_BIG)
    return bytes((frame_type,)) + peer + payload


def decode_frame(data: bytes, allowed: frozenset[FrameType] = CONTROLLER_INBOUND) -> Frame:
    """Parse one frame whose type must be in `allowed` (default: what a controller
    receives)."""
    if len(data) > MAX_FRAME:
        raise EnvelopeError("frame exceeds MAX_FRAME", CloseCode.TOO_BIG)
    if len(data) < HEADER_LEN:
        raise EnvelopeError("frame shorter than its header")
    try:
        frame_type = FrameType(data[0])
    except ValueError:
        raise EnvelopeError(f"unknown frame type 0x{data[0]:02x}") from None
    if frame_type not in allowed:
        raise EnvelopeError(f"frame type {frame_type.name} not allowed here")
    return Frame(frame_type, bytes(data[1:HEADER_LEN]), bytes(data[HEADER_LEN:]))
