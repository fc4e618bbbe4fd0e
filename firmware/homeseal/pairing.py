# Pairing, device side (PROTOCOL.md §5): the pairing window, the persistent
# failed-attempt counter, and one SPAKE2+ Verifier attempt at a time.
#
# Pairing.handle() takes one PAIR_START/PAIR payload and returns the frames to
# send as a list of (frame type, peer id, payload); it does no I/O besides the
# state files, so its rules can be read (and tested) in one place.
import binascii
import time

from micropython import const

from homeseal import chachapoly, envelope, ids, kdf, spake2plus, store

CONTEXT = b"HomeSeal v1 pairing"
KEYS_INFO = b"HomeSeal v1 pairing keys"

MAX_FAILED = const(20)
WINDOW_MS = 15 * 60 * 1000
ATTEMPT_MS = 30 * 1000

# Pairing message types (§5.2).
PBKDF_PARAM_REQUEST = const(0x01)
PBKDF_PARAM_RESPONSE = const(0x02)
PAKE1 = const(0x03)
PAKE2 = const(0x04)
PAKE3 = const(0x05)
PAIR_DONE = const(0x06)
PAIR_ERROR = const(0x7F)

# PAIR_ERROR codes.
NOT_IN_PAIRING_MODE = const(1)
WRONG_CODE = const(2)
LOCKED_OUT = const(3)
BUSY = const(4)
BAD_MESSAGE = const(5)
IDENTITY_MISMATCH = const(6)
UNSUPPORTED_VERSION = const(7)

# Attempt stages.
_PARAMS_SENT = const(1)
_PAKE2_SENT = const(2)

_NONCE0 = bytes(12)


class Provisioning:
    """The SPAKE2+ verifier record (never the setup code): w0, L, salt, iterations."""

    def __init__(self, d):
        try:
            self.w0 = binascii.unhexlify(d["w0"])
            self.L = binascii.unhexlify(d["L"])
            self.salt = binascii.unhexlify(d["salt"])
            self.iterations = d["iterations"]
            ok = (
                d.get("version") == 1
                and len(self.w0) == 32
                and len(self.L) == 65
                and self.L[0] == 4
                and 16 <= len(self.salt) <= 32
                and type(self.iterations) is int
                and 1000 <= self.iterations <= 1000000
            )
        except (KeyError, ValueError, TypeError):
            ok = False
        if not ok:
            raise store.StoreError(store.PROVISIONING + " is not a valid provisioning record")


class Pairing:
    def __init__(self, st, device_id, device_pub, on_paired, log, window_ms=WINDOW_MS):
        self._st = st
        self._id = device_id
        self._pub = device_pub
        self._on_paired = on_paired  # (controller_id, controller_pub) -> None, pins durably
        self._log = log
        self._window_ms = window_ms
        rec = st.read(store.PROVISIONING)
        self._prov = Provisioning(rec) if rec is not None else None
        a = st.read(store.ATTEMPTS) or {}
        f = a.get("failed", 0)
        self.failed = f if type(f) is int and 0 <= f <= MAX_FAILED else MAX_FAILED
        self.window_open = False
        self._deadline = 0
        self._peer = None  # controller of the attempt in progress
        self._stage = 0
        self._last = 0
        self._verifier = None
        self._secret = None  # w0*N, w0*M and L's comb table: built at the first PAKE1

    # ------------------------------------------------------------ the window

    @property
    def provisioned(self):
        return self._prov is not None

    def attempts_left(self):
        return MAX_FAILED - self.failed

    def open_window(self, reset_counter=False):
        if reset_counter and self.failed:
            self._set_failed(0)
        if self._prov is None:
            self._log("pairing unavailable: not provisioned")
            return
        if self.failed >= MAX_FAILED:
            self._log("pairing locked out")
            return
        self.window_open = True
        self._deadline = time.ticks_add(time.ticks_ms(), self._window_ms)
        self._abandon()
        self._log("pairing window open attempts_left=%d" % self.attempts_left())

    def close_window(self, why):
        if self.window_open:
            self.window_open = False
            self._log("pairing window closed: " + why)
        self._abandon()

    def tick(self, now):
        """Expire the window and a silent attempt."""
        if self._peer is not None and time.ticks_diff(now, self._last) >= ATTEMPT_MS:
            self._log("pairing attempt abandoned (timeout)")
            self._end_attempt()
        if self.window_open and time.ticks_diff(now, self._deadline) >= 0:
            self.close_window("timeout")

    def _abandon(self):
        self._peer = None
        self._stage = 0
        self._verifier = None

    def _end_attempt(self):
        # An attempt that failed or was abandoned stays counted; at the limit
        # the window closes (a successful 20th attempt would have reset it).
        self._abandon()
        if self.failed >= MAX_FAILED and self.window_open:
            self.close_window("failed-attempt limit reached")

    def _set_failed(self, n):
        # Durable before anything is answered: a power cut cannot undo a count.
        self._st.write(store.ATTEMPTS, {"failed": n})
        self.failed = n

    # ------------------------------------------------------------ messages

    def _error(self, peer, code):
        return [(envelope.PAIR, peer, bytes((PAIR_ERROR, code, self.attempts_left())))]

    def handle(self, ftype, peer, payload, paired):
        """Frames to send in answer to one PAIR_START / PAIR payload."""
        now = time.ticks_ms()
        self.tick(now)
        n = len(payload)
        mtype = payload[0] if n else -1
        if ftype == envelope.PAIR_START:
            if mtype != PBKDF_PARAM_REQUEST or n != 2:
                return self._error(peer, BAD_MESSAGE)
            if payload[1] != 1:
                return self._error(peer, UNSUPPORTED_VERSION)
            if paired or self._prov is None:
                return self._error(peer, NOT_IN_PAIRING_MODE)
            if self.failed >= MAX_FAILED:
                return self._error(peer, LOCKED_OUT)
            if not self.window_open:
                return self._error(peer, NOT_IN_PAIRING_MODE)
            if self._peer is not None and self._peer != peer:
                return self._error(peer, BUSY)
            # A restart by the same controller replaces its own attempt.
            self._abandon()
            self._peer = peer
            self._stage = _PARAMS_SENT
            self._last = now
            p = self._prov
            body = bytearray(1 + 4 + 1)
            body[0] = PBKDF_PARAM_RESPONSE
            body[1:5] = p.iterations.to_bytes(4, "big")
            body[5] = len(p.salt)
            return [(envelope.PAIR, peer, bytes(body) + p.salt + bytes((self.attempts_left(),)))]

        # PAIR: continues the attempt of this controller.
        if self._peer is None:
            if mtype == PAIR_ERROR:
                return []
            if not self.window_open:
                return self._error(peer, NOT_IN_PAIRING_MODE)
            return self._error(peer, BAD_MESSAGE)
        if peer != self._peer:
            return [] if mtype == PAIR_ERROR else self._error(peer, BUSY)
        self._last = now
        if mtype == PAIR_ERROR:
            self._log("pairing attempt ended by the controller")
            self._end_attempt()
            return []
        if mtype == PAKE1 and self._stage == _PARAMS_SENT and n == 66:
            return self._pake1(peer, payload)
        if mtype == PAKE3 and self._stage == _PAKE2_SENT and n == 81:
            return self._pake3(peer, payload)
        self._end_attempt()
        return self._error(peer, BAD_MESSAGE)

    def _pake1(self, peer, payload):
        self._set_failed(self.failed + 1)
        p = self._prov
        try:
            if self._secret is None:
                self._secret = spake2plus.VerifierSecret(p.w0, p.L)
            v = spake2plus.Verifier(CONTEXT, peer, self._id, self._secret, None)
            shareV, confirmV = v.respond(payload[1:66])
        except ValueError:
            self._end_attempt()
            return self._error(peer, BAD_MESSAGE)
        self._verifier = v
        self._stage = _PAKE2_SENT
        return [(envelope.PAIR, peer, bytes((PAKE2,)) + shareV + confirmV)]

    def _pake3(self, peer, payload):
        v = self._verifier
        self._abandon()
        try:
            K_shared = v.finish(payload[1:33])
        except ValueError:
            self._log("pairing failed: wrong code attempts_left=%d" % self.attempts_left())
            out = self._error(peer, WRONG_CODE)
            self._end_attempt()
            return out
        keys = kdf.hkdf(b"", K_shared, KEYS_INFO, 64)
        ad = peer + self._id
        try:
            controller_pub = chachapoly.decrypt(keys[0:32], _NONCE0, ad, bytes(payload[33:81]))
        except ValueError:
            self._end_attempt()
            return self._error(peer, BAD_MESSAGE)
        if len(controller_pub) != 32 or ids.endpoint_id(controller_pub) != peer:
            self._end_attempt()
            return self._error(peer, IDENTITY_MISMATCH)
        self._on_paired(peer, controller_pub)
        self._set_failed(0)
        sealed = chachapoly.encrypt(keys[32:64], _NONCE0, ad, self._pub)
        self.close_window("paired")
        # The comb table for L is large and only pairing needs it.
        self._secret = None
        return [(envelope.PAIR, peer, bytes((PAIR_DONE,)) + sealed), (envelope.CLAIM, peer, b"")]
