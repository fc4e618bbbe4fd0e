# Relay envelope (PROTOCOL.md §3): one binary websocket message per frame,
# `type (1) ‖ peer id (10) ‖ payload`. This layer only packs and splits; what
# a frame means is decided by the layer above.
from micropython import const

AUTH_CHALLENGE = const(0x01)
AUTH_RESPONSE = const(0x02)
AUTH_OK = const(0x03)
PAIR_START = const(0x10)
PAIR = const(0x11)
SESSION = const(0x20)
CLAIM = const(0x30)
CLAIMED = const(0x31)
RELEASE = const(0x32)
REMOVED = const(0x33)
PRESENCE = const(0x40)
ERROR = const(0x41)

MAX_FRAME = const(4096)
HEADER = const(11)
ID_LEN = const(10)
NO_PEER = bytes(ID_LEN)

# Frames a device may receive from the relay; anything else is a protocol error.
_TO_DEVICE = (AUTH_CHALLENGE, AUTH_OK, PAIR_START, PAIR, SESSION, CLAIMED, REMOVED, ERROR)

# Relay ERROR codes (§3.1).
ERR_PEER_OFFLINE = const(1)
ERR_NOT_PERMITTED = const(2)
ERR_RATE_LIMITED = const(3)
ERR_NOT_CLAIMABLE = const(4)


class EnvelopeError(Exception):
    pass


def header(ftype, peer):
    """The 11-byte header; the payload travels as a second part, never copied here."""
    if len(peer) != ID_LEN:
        raise EnvelopeError("peer id")
    h = bytearray(HEADER)
    h[0] = ftype
    h[1:HEADER] = peer
    return h


def parse(msg):
    """Split a received message into (type, peer id bytes, payload memoryview).

    Raises EnvelopeError for a message that is short, too long or of a type a
    device never receives.
    """
    n = len(msg)
    if n < HEADER:
        raise EnvelopeError("short frame")
    if n > MAX_FRAME:
        raise EnvelopeError("frame too big")
    mv = memoryview(msg)
    ftype = mv[0]
    if ftype not in _TO_DEVICE:
        raise EnvelopeError("frame type")
    return ftype, bytes(mv[1:HEADER]), mv[HEADER:]
