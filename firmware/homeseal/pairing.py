# Pairing, device side (PROTOCOL.md §5): the persistent failed-attempt
# counter, the pairing window, and the answers to every PAIR_START / PAIR
# payload.
#
# Pairing.handle() takes one payload and returns the frames to send as a list
# of (frame type, peer id, payload); it does no I/O besides the state files,
# so the rules can be read (and tested) in one place. Every pairing message
# the device sends is built by this module or by pairing_window.py, and
# attempts.json is written here only (and at boot by bootstate.py, which reads it).
#
# This module stays loaded, paired or not: a paired device still answers
# pairing messages (not_in_pairing_mode) and its button resets the counter.
# What only an open window needs -- the provisioning record, the attempt in
# progress, the SPAKE2+ Verifier with P-256 (tens of KiB with the comb
# tables) -- is in pairing_window.py, imported when a window opens and
# dropped when it closes.
import time

from micropython import const

from homeseal import envelope, store, unload

MAX_FAILED = const(20)
WINDOW_MS = 15 * 60 * 1000

# The message types and PAIR_ERROR codes (§5.2) that this module reads or
# sends; pairing_window.py defines the ones only an open window uses.
PAIR_ERROR = const(0x7F)
BAD_MESSAGE = const(5)
_PBKDF_PARAM_REQUEST = const(0x01)
_NOT_IN_PAIRING_MODE = const(1)
_LOCKED_OUT = const(3)
_UNSUPPORTED_VERSION = const(7)


class Pairing:
    def __init__(
        self, st, device_id, device_pub, failed, on_paired, log, window_ms=WINDOW_MS, attempt_ms=0
    ):
        # failed: the counter as bootstate.load() read it (or fails it closed).
        self._st = st
        self.device_id = device_id
        self.device_pub = device_pub
        self.on_paired = on_paired  # (controller_id, controller_pub) -> None, pins durably
        self.log = log
        self._window_ms = window_ms
        self.attempt_ms = attempt_ms  # 0: pairing_window.ATTEMPT_MS (tests shorten it)
        self.failed = failed
        self._provisioned = False  # known once a window was asked for
        self._window = None  # a pairing_window.Window while the window is open

    # ------------------------------------------------------------ the counter

    def attempts_left(self):
        return MAX_FAILED - self.failed

    def set_failed(self, n):
        """Durable before anything is answered: a power cut cannot undo a count."""
        self._st.write(store.ATTEMPTS, {"failed": n})
        self.failed = n

    def paired(self, controller_id, controller_pub):
        """A successful attempt: pin the controller, then a fresh counter (a cut in
        between leaves a paired device, whose window never opens), then close."""
        self.on_paired(controller_id, controller_pub)
        self.set_failed(0)
        self.close_window("paired")

    def reset_counter(self):
        """A fresh failed-attempt counter (the pairing button's long press)."""
        if self.failed:
            self.set_failed(0)

    # ------------------------------------------------------------ the window

    @property
    def window_open(self):
        return self._window is not None

    def open_window(self, reset_counter=False):
        """Open (or restart) the window; an attempt in progress is abandoned."""
        if reset_counter:
            self.reset_counter()
        rec = self._st.read(store.PROVISIONING)
        self._provisioned = rec is not None
        if rec is None:
            self.log("pairing unavailable: not provisioned")
            return
        if self.failed >= MAX_FAILED:
            self.log("pairing locked out")
            return
        if self._window is not None:
            self._window.restart(self._window_ms)
        else:
            from homeseal import pairing_window

            self._window = pairing_window.Window(self, rec, self._window_ms)
        self.log("pairing window open attempts_left=%d" % self.attempts_left())

    def close_window(self, why):
        if self._window is None:
            return
        self._window = None
        self.log("pairing window closed: " + why)
        unload("pairing_window", "spake2plus", "p256")

    def tick(self, now):
        """Expire the window and a silent attempt."""
        if self._window is not None:
            self._window.tick(now)

    # ------------------------------------------------------------ messages

    def error(self, peer, code):
        """The PAIR_ERROR frame for code, with the attempts left."""
        return [(envelope.PAIR, peer, bytes((PAIR_ERROR, code, self.attempts_left())))]

    def handle(self, ftype, peer, payload, paired):
        """Frames to send in answer to one PAIR_START / PAIR payload."""
        n = len(payload)
        mtype = payload[0] if n else -1
        if paired:
            # No window on a paired device, whatever the message (§5.3); a
            # PAIR_ERROR is never answered.
            return [] if mtype == PAIR_ERROR else self.error(peer, _NOT_IN_PAIRING_MODE)
        if ftype == envelope.PAIR_START:
            if mtype != _PBKDF_PARAM_REQUEST or n != 2:
                return self.error(peer, BAD_MESSAGE)
            if payload[1] != 1:
                return self.error(peer, _UNSUPPORTED_VERSION)
            if not self._provisioned:
                return self.error(peer, _NOT_IN_PAIRING_MODE)
            if self.failed >= MAX_FAILED:
                return self.error(peer, _LOCKED_OUT)
        now = time.ticks_ms()
        self.tick(now)
        w = self._window
        if w is None:
            return [] if mtype == PAIR_ERROR else self.error(peer, _NOT_IN_PAIRING_MODE)
        return w.handle(ftype, peer, payload, now)
