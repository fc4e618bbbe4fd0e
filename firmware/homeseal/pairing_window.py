# An open pairing window (PROTOCOL.md §5.3), device side: the provisioning
# record, the one attempt in progress, and the SPAKE2+ Verifier with the
# static-key exchange. pairing.Pairing imports this module when a window opens
# and drops it (with spake2plus and p256) when the window closes; it checks a
# PAIR_START before handing it over, and owns the failed-attempt counter and
# the PAIR_ERROR frames, which this module asks it for.
import binascii
import time
from hashlib import sha256

from micropython import const

from homeseal import chachapoly, envelope, ids, kdf, spake2plus, store
from homeseal.pairing import BAD_MESSAGE, MAX_FAILED, PAIR_ERROR

# The SPAKE2+ Context (§5.1): this label ‖ controller id ‖ SHA-256(the
# attempt's PBKDF_PARAM_REQUEST ‖ PBKDF_PARAM_RESPONSE, both as sent), so a
# salt, iteration count or attempts_left changed on the way fails both
# confirmations. idProver is empty, idVerifier the device id.
CONTEXT = b"HomeSeal v1 pairing"
KEYS_INFO = b"HomeSeal v1 pairing keys"
ATTEMPT_MS = 30 * 1000

# The message types and PAIR_ERROR codes (§5.2) only an open window sends or
# reads; PAIR_ERROR and bad_message are pairing.py's.
_PBKDF_PARAM_RESPONSE = const(0x02)
_PAKE1 = const(0x03)
_PAKE2 = const(0x04)
_PAKE3 = const(0x05)
_PAIR_DONE = const(0x06)
_WRONG_CODE = const(2)
_BUSY = const(4)
_IDENTITY_MISMATCH = const(6)

# Attempt stages.
_PARAMS_SENT = const(1)
_PAKE2_SENT = const(2)

_NONCE0 = bytes(12)
# The controllers that held a slot in this window, remembered so that one that
# has not goes first (10 bytes each).
_SERVED = const(8)


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


class Window:
    """The open window and its one attempt slot (§5.3).

    A slot lasts ATTEMPT_MS from the PAIR_START that took it, whatever its
    holder does: a restart by the same controller keeps the deadline (and a
    PAKE1 it sent stays counted). The first other controller refused `busy`
    while the slot is held is remembered: when the attempt ends, the next slot
    (ATTEMPT_MS from then) is that controller's, and only its PAIR_START fills
    it. So no controller keeps another out for more than one slot: the owner
    refused `busy` by one stranger's attempt gets the slot that follows it.
    A refused controller that has not held a slot in this window takes the
    next one from a refused controller that has (the last _SERVED holders are
    remembered), so strangers taking turns cannot keep the owner out either:
    k of them cost it at most k slots (k <= _SERVED)."""

    def __init__(self, pairing, rec, window_ms):
        self._p = pairing
        self._prov = Provisioning(rec)
        self._slot_ms = pairing.attempt_ms or ATTEMPT_MS
        self._deadline = 0
        self._peer = None  # the controller the slot is for
        self._stage = 0  # 0: its turn, no PAIR_START yet (a slot kept for _next)
        self._until = 0  # the slot's end
        self._next = None  # the controller the next slot is kept for
        self._served = []  # the last _SERVED controllers that held a slot
        self._verifier = None
        self._params = None  # SHA-256(PBKDF_PARAM_REQUEST ‖ PBKDF_PARAM_RESPONSE)
        self._secret = None  # w0*N, w0*M and L's comb table: built at the first PAKE1
        self.restart(window_ms)

    def restart(self, window_ms):
        """The full window from now on; an attempt in progress is abandoned."""
        self._deadline = time.ticks_add(time.ticks_ms(), window_ms)
        self._next = None
        self._served = []
        self._abandon()

    def tick(self, now):
        """End a slot whose time is up, and the window itself."""
        if self._peer is not None and time.ticks_diff(now, self._until) >= 0:
            if self._stage:
                self._p.log("pairing attempt abandoned (timeout)")
            self._end_attempt()
        if time.ticks_diff(now, self._deadline) >= 0:
            self._p.close_window("timeout")

    def _slot(self, peer, now):
        """The slot is peer's for ATTEMPT_MS from now."""
        self._peer = peer
        self._until = time.ticks_add(now, self._slot_ms)
        served = self._served
        if peer in served:
            served.remove(peer)
        elif len(served) >= _SERVED:
            served.pop(0)
        served.append(peer)

    def _abandon(self):
        self._peer = None
        self._stage = 0
        self._verifier = None

    def _end_attempt(self):
        # An attempt that failed or was abandoned stays counted; at the limit
        # the window closes (a successful 20th attempt would have reset it).
        self._abandon()
        if self._p.failed >= MAX_FAILED:
            self._p.close_window("failed-attempt limit reached")
        elif self._next is not None:
            self._slot(self._next, time.ticks_ms())
            self._next = None

    def handle(self, ftype, peer, payload, now):
        """Frames in answer to a PAIR payload, or to a PAIR_START that
        Pairing.handle() has checked."""
        p = self._p
        if ftype == envelope.PAIR_START:
            if self._peer is not None and self._peer != peer:
                nxt = self._next
                if nxt is None or (nxt in self._served and peer not in self._served):
                    self._next = peer
                return p.error(peer, _BUSY)
            if self._peer is None:
                self._slot(peer, now)
            # A restart by the same controller, or its kept slot: the deadline stays.
            self._stage = _PARAMS_SENT
            self._verifier = None
            prov = self._prov
            body = bytearray(1 + 4 + 1)
            body[0] = _PBKDF_PARAM_RESPONSE
            body[1:5] = prov.iterations.to_bytes(4, "big")
            body[5] = len(prov.salt)
            response = bytes(body) + prov.salt + bytes((p.attempts_left(),))
            self._params = sha256(bytes(payload) + response).digest()
            return [(envelope.PAIR, peer, response)]

        # PAIR: continues the attempt of this controller.
        n = len(payload)
        mtype = payload[0] if n else -1
        if self._peer is None:
            return [] if mtype == PAIR_ERROR else p.error(peer, BAD_MESSAGE)
        if peer != self._peer:
            return [] if mtype == PAIR_ERROR else p.error(peer, _BUSY)
        if mtype == PAIR_ERROR:
            p.log("pairing attempt ended by the controller")
            self._end_attempt()
            return []
        if mtype == _PAKE1 and self._stage == _PARAMS_SENT and n == 66:
            return self._pake1(peer, payload)
        if mtype == _PAKE3 and self._stage == _PAKE2_SENT and n == 81:
            return self._pake3(peer, payload)
        self._end_attempt()
        return p.error(peer, BAD_MESSAGE)

    def _pake1(self, peer, payload):
        p = self._p
        # Counted before PAKE2 is sent, so an abandoned attempt counts too.
        p.set_failed(p.failed + 1)
        try:
            if self._secret is None:
                self._secret = spake2plus.VerifierSecret(self._prov.w0, self._prov.L)
            context = CONTEXT + peer + self._params
            v = spake2plus.Verifier(context, b"", p.device_id, self._secret, None)
            shareV, confirmV = v.respond(payload[1:66])
        except ValueError:
            self._end_attempt()
            return p.error(peer, BAD_MESSAGE)
        self._verifier = v
        self._stage = _PAKE2_SENT
        return [(envelope.PAIR, peer, bytes((_PAKE2,)) + shareV + confirmV)]

    def _pake3(self, peer, payload):
        p = self._p
        v = self._verifier
        self._abandon()
        try:
            K_shared = v.finish(payload[1:33])
        except ValueError:
            p.log("pairing failed: wrong code attempts_left=%d" % p.attempts_left())
            out = p.error(peer, _WRONG_CODE)
            self._end_attempt()
            return out
        keys = kdf.hkdf(b"", K_shared, KEYS_INFO, 64)
        ad = peer + p.device_id
        try:
            controller_pub = chachapoly.decrypt(keys[0:32], _NONCE0, ad, bytes(payload[33:81]))
        except ValueError:
            self._end_attempt()
            return p.error(peer, BAD_MESSAGE)
        if len(controller_pub) != 32 or ids.endpoint_id(controller_pub) != peer:
            self._end_attempt()
            return p.error(peer, _IDENTITY_MISMATCH)
        sealed = chachapoly.encrypt(keys[32:64], _NONCE0, ad, p.device_pub)
        # The window closes; this module, the Verifier and its tables go with it.
        p.paired(peer, controller_pub)
        return [(envelope.PAIR, peer, bytes((_PAIR_DONE,)) + sealed), (envelope.CLAIM, peer, b"")]
