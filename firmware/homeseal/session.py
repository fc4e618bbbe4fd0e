# Sessions, device side (PROTOCOL.md §6): the Noise KK responder.
#
# `Responder` owns every byte of a SESSION payload: the kinds (HANDSHAKE1,
# HANDSHAKE2, TRANSPORT, RESET) and the RESET reasons, the pre-generated
# ephemeral key, the cached static-static DH, the budget of HANDSHAKE1 it
# answers, the open `Session` with its message and age limits, and the new
# one a handshake has made until the controller confirms it. It does no I/O:
# receive() returns what to send back and the decrypted application message,
# seal() the TRANSPORT payload of an outgoing one; the device puts them into
# SESSION frames.
import time

from micropython import const

from homeseal import noise

PROTOCOL_NAME = "Noise_KK_25519_ChaChaPoly_SHA256"
PROLOGUE = b"HomeSeal v1 session"

# SESSION payload kinds.
_HANDSHAKE1 = const(0x01)
_HANDSHAKE2 = const(0x02)
_TRANSPORT = const(0x03)
_RESET = const(0x04)

# RESET reasons.
_NO_SESSION = const(1)
_HANDSHAKE_FAILED = const(2)
_NOT_PAIRED = const(3)
_LIMIT_REACHED = const(4)
_PROTOCOL_ERROR = const(5)
_DECRYPT_FAILED = const(6)

MAX_MESSAGES = const(0x100000)  # 2^20 per direction
MAX_AGE_MS = 24 * 3600 * 1000
_HANDSHAKE1_LEN = const(48)
_TRANSPORT_HEAD = b"\x03"
# A handshake's session that no TRANSPORT confirmed within this is dropped.
_PENDING_MS = const(15000)
# The HANDSHAKE1 budget (a token bucket): each admitted one costs a DH with
# the static key (`es`); beyond the budget a HANDSHAKE1 is dropped unanswered.
# Module globals, not const: the interop tests raise them.
HANDSHAKE_BURST = 4
HANDSHAKE_EVERY_MS = 5000


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

    def encrypt(self, pt, head=b""):
        self._check(self._tx)
        return self._tx.encrypt_with_ad(b"", pt, head)


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


def _reset(reason):
    return bytes((_RESET, reason))


class Responder:
    """The device's end of the session layer, for its one pinned controller.

    receive(peer, payload) takes every SESSION payload the relay delivers, from
    any peer, and returns (reply, message, opened): reply is the SESSION payload
    to send back to that peer (HANDSHAKE2 or a RESET) or None, message the
    decrypted application message or None, opened True when that message
    confirmed a new session (the caller sends describe and state in it, then
    handles the message). seal(message) gives the TRANSPORT payload for the
    pinned controller. Every failure ends the session (and says so through
    log); a bad HANDSHAKE1 leaves an open session as it is.

    A HANDSHAKE1 makes a *pending* session and keeps the open one: the pending
    one becomes the session only when a TRANSPORT decrypts under it (nonce 0
    of its receive key), so a replayed or forged HANDSHAKE1 never costs the
    live session (§6). Nothing is sealed in a pending session; it is dropped
    by the next HANDSHAKE1 or after 15 s.

    HANDSHAKE1 from the pinned controller are answered within a token bucket
    of HANDSHAKE_BURST, refilled one per HANDSHAKE_EVERY_MS; beyond it one is
    dropped without a DH or an answer. Only the pinned controller's id costs a
    DH (any other peer gets RESET not_paired), so one bucket is both per peer
    and overall. `handshakes` counts those admitted (= the static-key DHs on
    received keys), `dropped` the others.
    """

    def __init__(self, s, device_id, log):
        self._s = s  # the device's static key pair (private, public)
        self._id = device_id
        self._log = log
        self.peer = None  # the pinned controller's id,
        self._rs = None  # and its static key
        self._e = None  # the next ephemeral key pair, made at a quiet moment
        self._ss = None  # DH(s, rs): fixed for a pairing, as secret as s
        self._session = None
        self._pending = None
        self._tokens = HANDSHAKE_BURST
        self._refill = time.ticks_ms()
        self._quiet = False  # the drops since the last admitted one were logged
        self.handshakes = 0
        self.dropped = 0

    @property
    def is_open(self):
        return self._session is not None

    def pin(self, controller_id, controller_pub):
        """Answer only this controller from now on; (None, None) answers nobody.
        Either way the current session ends."""
        self.peer = controller_id
        self._rs = controller_pub
        self._ss = None
        self._session = None
        self._pending = None
        if controller_id is None:
            self._e = None

    def precompute(self):
        """Work for the next handshake, done at a quiet moment rather than when
        HANDSHAKE1 arrives: the ephemeral key pair, then DH(s, controller s).
        At most one X25519 per call, so a quiet moment stays short; True when
        there was something to do. Also drops a pending session past its time."""
        p = self._pending
        if p is not None and time.ticks_diff(time.ticks_ms(), p._t0) >= _PENDING_MS:
            self._pending = None
            self._log("handshake not confirmed")
        if self.peer is None:
            return False
        if self._e is None:
            self._e = noise.generate_keypair()
        elif self._ss is None:
            self._ss = noise.static_dh(self._s, self._rs)
        else:
            return False
        return True

    def receive(self, peer, payload):
        """(reply, message, opened) for one SESSION payload from peer."""
        n = len(payload)
        kind = payload[0] if n else 0
        if kind == _RESET:
            # Unauthenticated (§6): it makes the device discard nothing.
            self._log("session reset by controller (ignored)")
            return None, None, False
        if n and (self.peer is None or peer != self.peer):
            return _reset(_NOT_PAIRED), None, False
        if kind == _HANDSHAKE1:
            return self._handshake(peer, payload[1:]), None, False
        if kind == _TRANSPORT:
            return self._transport(payload[1:])
        return _reset(_PROTOCOL_ERROR), None, False

    def _admit(self):
        """Take a token from the HANDSHAKE1 bucket; False when it is empty."""
        now = time.ticks_ms()
        if self._tokens < HANDSHAKE_BURST:
            k = time.ticks_diff(now, self._refill) // HANDSHAKE_EVERY_MS
            if k > 0:
                self._tokens = min(HANDSHAKE_BURST, self._tokens + k)
                self._refill = time.ticks_add(self._refill, k * HANDSHAKE_EVERY_MS)
        if self._tokens == HANDSHAKE_BURST:
            self._refill = now
        if self._tokens == 0:
            if not self._quiet:
                self._log("HANDSHAKE1 budget spent: dropping them until it refills")
                self._quiet = True
            self.dropped += 1
            return False
        self._tokens -= 1
        self._quiet = False
        return True

    def _handshake(self, peer, msg1):
        if len(msg1) != _HANDSHAKE1_LEN:
            self._log("handshake failed")
            return _reset(_HANDSHAKE_FAILED)
        if not self._admit():
            return None
        self.handshakes += 1
        e, self._e = self._e, None
        try:
            s, msg2 = respond(self._s, self._rs, self._id, peer, msg1, e, self._ss)
        except ValueError:
            # e never left the device (HANDSHAKE2 was not written): keep it.
            self._e = e
            self._log("handshake failed")
            return _reset(_HANDSHAKE_FAILED)
        # Pending until the controller's first TRANSPORT under it; the open
        # session goes on meanwhile.
        self._pending = s
        return bytes((_HANDSHAKE2,)) + msg2

    def _transport(self, ct):
        p = self._pending
        if p is not None:
            if time.ticks_diff(time.ticks_ms(), p._t0) >= _PENDING_MS:
                p = self._pending = None
            else:
                try:
                    pt = p.decrypt(ct)
                except ValueError:
                    pass
                else:
                    self._session = p
                    self._pending = None
                    return None, pt, True
        s = self._session
        if s is None:
            if p is None:
                return _reset(_NO_SESSION), None, False
            self._pending = None
            self._log("session closed: decrypt failed")
            return _reset(_DECRYPT_FAILED), None, False
        try:
            return None, s.decrypt(ct), False
        except LimitReached:
            return self._end(_LIMIT_REACHED, "limit reached"), None, False
        except ValueError:
            return self._end(_DECRYPT_FAILED, "decrypt failed"), None, False

    def _end(self, reason, why):
        self._pending = None
        if self._session is not None:
            self._session = None
            self._log("session closed: " + why)
        return _reset(reason)

    def protocol_error(self, why):
        """End the session over a decrypted message that is not a valid
        application message (§7); the RESET to send."""
        return self._end(_PROTOCOL_ERROR, "protocol error: " + why)

    def seal(self, message):
        """The SESSION payload that carries one application message to the
        pinned controller: TRANSPORT, or the RESET limit_reached that ends the
        session at its limits; None without a session."""
        s = self._session
        if s is None:
            return None
        try:
            # kind ‖ ciphertext in one buffer: the message is not copied again.
            return s.encrypt(message, _TRANSPORT_HEAD)
        except LimitReached:
            return self._end(_LIMIT_REACHED, "limit reached")
