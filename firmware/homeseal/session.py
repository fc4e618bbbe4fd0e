# Sessions, device side (PROTOCOL.md §6): the Noise KK responder and the
# transport CipherStates with the message and age limits.
import time

from micropython import const

from homeseal import noise

PROTOCOL_NAME = "Noise_KK_25519_ChaChaPoly_SHA256"
PROLOGUE = b"HomeSeal v1 session"

# SESSION payload kinds.
HANDSHAKE1 = const(0x01)
HANDSHAKE2 = const(0x02)
TRANSPORT = const(0x03)
RESET = const(0x04)

# RESET reasons.
NO_SESSION = const(1)
HANDSHAKE_FAILED = const(2)
NOT_PAIRED = const(3)
LIMIT_REACHED = const(4)
PROTOCOL_ERROR = const(5)
DECRYPT_FAILED = const(6)

MAX_MESSAGES = const(0x100000)  # 2^20 per direction
MAX_AGE_MS = 24 * 3600 * 1000
_HANDSHAKE1_LEN = const(48)


class LimitReached(Exception):
    pass


class Session:
    """One open session with the pinned controller."""

    def __init__(self, peer, send_cs, recv_cs):
        self.peer = peer
        self._tx = send_cs
        self._rx = recv_cs
        self._t0 = time.ticks_ms()

    def _check(self, cs):
        if cs.n >= MAX_MESSAGES or time.ticks_diff(time.ticks_ms(), self._t0) >= MAX_AGE_MS:
            raise LimitReached()

    def decrypt(self, ct):
        """Plaintext; ValueError on any failure (the caller ends the session)."""
        self._check(self._rx)
        return self._rx.decrypt_with_ad(b"", ct)

    def encrypt(self, pt):
        self._check(self._tx)
        return self._tx.encrypt_with_ad(b"", pt)


def respond(s, controller_pub, device_id, controller_id, msg1, e=None, ss=None):
    """Answer HANDSHAKE1 (the Noise message `-> e, es, ss`).

    s is the device's key pair (private, public); e an optional pre-generated
    ephemeral key pair (used once); ss the optional cached static-static DH
    with this controller (noise.static_dh). Each saves one X25519 on the path
    from HANDSHAKE1 to HANDSHAKE2. Returns (Session, HANDSHAKE2 Noise message);
    raises ValueError when the message does not decrypt.
    """
    if len(msg1) != _HANDSHAKE1_LEN:
        raise ValueError("HANDSHAKE1 length")
    hs = noise.HandshakeState(
        PROTOCOL_NAME,
        False,
        PROLOGUE + device_id + controller_id,
        s=s,
        e=e,
        rs=controller_pub,
        ss=ss,
    )
    if hs.read_message(msg1):
        raise ValueError("HANDSHAKE1 payload must be empty")
    msg2 = hs.write_message(b"")
    send_cs, recv_cs = hs.transport()
    return Session(controller_id, send_cs, recv_cs), msg2
