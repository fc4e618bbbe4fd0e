"""The relay envelope of PROTOCOL.md §3: an 11-byte header and an opaque payload.

The relay reads the type byte and the peer id by slicing and never looks at the
payload. Frames it builds itself (challenge, presence, errors…) are tiny.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Final

HEADER_LEN: Final = 11
ID_LEN: Final = 10
MAX_FRAME: Final = 4096
ZERO_ID: Final = bytes(ID_LEN)

# Frame types (§3).
AUTH_CHALLENGE: Final = 0x01
AUTH_RESPONSE: Final = 0x02
AUTH_OK: Final = 0x03
PAIR_START: Final = 0x10
PAIR: Final = 0x11
SESSION: Final = 0x20
CLAIM: Final = 0x30
CLAIMED: Final = 0x31
RELEASE: Final = 0x32
REMOVED: Final = 0x33
PRESENCE: Final = 0x40
ERROR: Final = 0x41

# ERROR codes (§3.1).
ERR_PEER_OFFLINE: Final = 1
ERR_NOT_PERMITTED: Final = 2
ERR_RATE_LIMITED: Final = 3
ERR_NOT_CLAIMABLE: Final = 4

# Close codes (§2.1).
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_TOO_BIG: Final = 1009
CLOSE_RESTARTING: Final = 1012
CLOSE_PROTOCOL_ERROR: Final = 4000
CLOSE_AUTH_FAILED: Final = 4001
CLOSE_REPLACED: Final = 4002
CLOSE_AUTH_TIMEOUT: Final = 4003
CLOSE_SLOW_CONSUMER: Final = 4004
CLOSE_RATE_LIMITED: Final = 4005
CLOSE_TOO_MANY_CONNECTIONS: Final = 4006
CLOSE_UNAUTHORIZED: Final = 4007
CLOSE_INTERNAL_ERROR: Final = 1011

# Close reasons sent with the codes: the names of §2.1.
CLOSE_REASONS: Final = {
    CLOSE_TOO_BIG: b"too_big",
    CLOSE_RESTARTING: b"restarting",
    CLOSE_PROTOCOL_ERROR: b"protocol_error",
    CLOSE_AUTH_FAILED: b"auth_failed",
    CLOSE_REPLACED: b"replaced",
    CLOSE_AUTH_TIMEOUT: b"auth_timeout",
    CLOSE_SLOW_CONSUMER: b"slow_consumer",
    CLOSE_RATE_LIMITED: b"rate_limited",
    CLOSE_TOO_MANY_CONNECTIONS: b"too_many_connections",
    CLOSE_UNAUTHORIZED: b"unauthorized",
    CLOSE_INTERNAL_ERROR: b"internal_error",
}

SUBPROTOCOL: Final = "homeseal.v1"


class EnvelopeError(ValueError):
    """A frame that does not follow §3 (shorter than the header, too long)."""


def build(frame_type: int, peer_id: bytes = ZERO_ID, payload: bytes = b"") -> bytes:
    """One frame: type ‖ peer id ‖ payload."""
    if len(peer_id) != ID_LEN:
        raise EnvelopeError("peer id must be 10 bytes")
    if HEADER_LEN + len(payload) > MAX_FRAME:
        raise EnvelopeError("frame exceeds MAX_FRAME")
    return bytes((frame_type,)) + peer_id + payload


def parse(frame: bytes) -> tuple[int, bytes, bytes]:
    """(type, peer id, payload) by slicing; the payload stays opaque."""
    if len(frame) < HEADER_LEN:
        raise EnvelopeError("frame shorter than the 11-byte header")
    if len(frame) > MAX_FRAME:
        raise EnvelopeError("frame exceeds MAX_FRAME")
    return frame[0], frame[1:HEADER_LEN], frame[HEADER_LEN:]


def endpoint_id(public_key: bytes) -> bytes:
    """Endpoint id = SHA-256(s.pub)[0:10] (§1)."""
    return hashlib.sha256(public_key).digest()[:ID_LEN]


def format_id(ident: bytes) -> str:
    """Human form of an endpoint id (§1.1): base32, lowercase, groups of four."""
    text = base64.b32encode(ident).decode().lower().rstrip("=")
    return "-".join(text[i : i + 4] for i in range(0, len(text), 4))


_ID_TEXT = re.compile(r"[A-Za-z2-7]{16}")


def parse_id(text: str) -> bytes:
    """Parse a human endpoint id; any case, '-' and spaces ignored (§1.1)."""
    compact = text.replace("-", "").replace(" ", "")
    if not _ID_TEXT.fullmatch(compact):
        raise ValueError("an endpoint id is 16 base32 characters")
    return base64.b32decode(compact.upper())
