# The device: identity, the pinned controller, and the glue between the
# relay link (frames), pairing, the session and the entities.
import asyncio
import binascii
import gc
import sys
import time

from micropython import const

from homeseal import entities, envelope, ids, memstat, messages, noise, relay, session, store, x25519
from homeseal.errors import ConfigError

FW_VERSION = "0.1.0"
_TICK_MS = const(1000)
WINDOW_MS = 15 * 60 * 1000  # the pairing window (PROTOCOL.md §5.3)
# Only an unpaired device needs these (P-256, SPAKE2+: tens of KiB with the
# verifier's tables); a paired one never imports them, and pairing unloads them.
_PAIRING_MODULES = ("homeseal.pairing", "homeseal.spake2plus", "homeseal.p256")
_NOT_IN_PAIRING_MODE = const(1)
_MAX_FAILED = const(20)


def log(msg):
    print("homeseal:", msg)


def _hex(b):
    return binascii.hexlify(b).decode()


def load_identity(st, log=log):
    """The static key pair (private, public); generated and stored on first boot."""
    rec = st.read(store.IDENTITY)
    if rec is None:
        priv = x25519.generate_private()
        pub = x25519.public_key(priv)
        st.write(store.IDENTITY, {"version": 1, "private_key": _hex(priv), "public_key": _hex(pub)})
        log("first boot: generated the device key")
        return priv, pub
    try:
        priv = binascii.unhexlify(rec["private_key"])
        pub = binascii.unhexlify(rec["public_key"])
        ok = len(priv) == 32 and x25519.public_key(priv) == pub
    except (KeyError, ValueError, TypeError):
        ok = False
    if not ok:
        raise store.StoreError(store.IDENTITY + " is corrupt (private and public key do not match)")
    return priv, pub


def _failed_attempts_of(st):
    rec = st.read(store.ATTEMPTS) or {}
    n = rec.get("failed", 0)
    return n if type(n) is int and 0 <= n <= _MAX_FAILED else _MAX_FAILED


def load_pairing(st):
    """(controller id, controller public key, claimed) or (None, None, False)."""
    rec = st.read(store.PAIRING)
    if rec is None:
        return None, None, False
    try:
        cid = binascii.unhexlify(rec["controller_id"])
        cpub = binascii.unhexlify(rec["controller_key"])
        ok = len(cpub) == 32 and ids.endpoint_id(cpub) == cid
    except (KeyError, ValueError, TypeError):
        ok = False
    if not ok:
        raise store.StoreError(store.PAIRING + " is corrupt")
    return cid, cpub, rec.get("claimed") is True


class Device:
    def __init__(self, cfg, st, hw, log=log, window_ms=WINDOW_MS, bufs=None):
        self.cfg = cfg
        self.st = st
        self.hw = hw
        self.log = log
        self.priv, self.pub = load_identity(st, log)
        self.id = ids.endpoint_id(self.pub)
        self.controller_id, self.controller_pub, self.claimed = load_pairing(st)
        self.ents = entities.Entities(cfg["entities"], hw)
        pb = cfg["pairing_button"]
        self.button = entities.PairingButton(pb, hw) if pb else None
        self._window_ms = window_ms
        self.pairing = None  # a pairing.Pairing while unpaired
        self.relay = relay.Relay(cfg["relay"], self.priv, self.pub, self.id, log, bufs)
        self.relay.on_frame = self._on_frame
        self.relay.on_up = self._on_up
        self.session = None
        self._send_lock = asyncio.Lock()
        self._results = messages.ResultCache(32)
        self._next_e = None
        self._ss = None  # cached DH(s, controller s): fixed for a pairing, as secret as s
        try:
            self._describe()
            messages.state(self.ents.full_state())
        except messages.MessageError:
            raise ConfigError("entities", "too many entities: describe/state would exceed 3072 bytes")
        log("device id " + ids.format_id(self.id))
        if self.controller_id is None:
            self._pairing().open_window()
        else:
            log("paired with controller " + ids.format_id(self.controller_id))

    def _describe(self):
        # Encoded when needed (once per session) rather than kept in RAM.
        return messages.describe(FW_VERSION, self.cfg["model"], self.cfg["name"], self.ents.describe())

    def _pairing(self):
        if self.pairing is None:
            from homeseal import pairing

            self.pairing = pairing.Pairing(
                self.st, self.id, self.pub, self._pin_controller, self.log, self._window_ms
            )
        return self.pairing

    def _drop_pairing(self):
        self.pairing = None
        pkg = sys.modules.get("homeseal")
        for name in _PAIRING_MODULES:
            if sys.modules.pop(name, None) is not None and pkg is not None:
                try:
                    delattr(pkg, name[9:])
                except AttributeError:
                    pass
        gc.collect()

    # ------------------------------------------------------------ run

    async def run(self, control=None):
        if control is not None:
            await self.hw.start_control(control[0], control[1])
            self.log("control socket %s:%d" % control)
        if self.controller_id is not None:
            self._next_e = noise.generate_keypair()  # ready for the first HANDSHAKE1
        await self.hw.network_up(self.cfg["wifi"], self.log)
        asyncio.create_task(self.ents.run(self._on_change, self.button, self._on_button))
        asyncio.create_task(self._periodic())
        await self.relay.run()

    async def _periodic(self):
        interval = self.cfg["state_interval"] * 1000
        next_state = time.ticks_add(time.ticks_ms(), interval)
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            now = time.ticks_ms()
            try:
                if self.pairing is not None:
                    self.pairing.tick(now)
                if time.ticks_diff(now, next_state) >= 0:
                    next_state = time.ticks_add(now, interval)
                    if self.session is not None:
                        await self._send_app(messages.state(self.ents.full_state()))
                if self._next_e is None and self.controller_id is not None:
                    # Take the ephemeral key's cost now, not when HANDSHAKE1 arrives.
                    self._next_e = noise.generate_keypair()
                if self._ss is None and self.controller_pub is not None:
                    self._ss = noise.static_dh((self.priv, self.pub), self.controller_pub)
            except Exception as e:
                sys.print_exception(e)
            gc.collect()

    # ------------------------------------------------------------ relay frames

    async def _on_up(self, claimed):
        if self.controller_id is not None and not claimed:
            self.log("paired but not claimed at the relay: claiming again")
            await self.relay.send(envelope.CLAIM, self.controller_id)
        elif self.controller_id is None and claimed:
            self.log("unpaired but claimed at the relay: releasing")
            await self.relay.send(envelope.RELEASE, envelope.NO_PEER)
        self.claimed = claimed and self.controller_id is not None

    async def _on_frame(self, ftype, peer, payload):
        memstat.frame_start()
        if ftype == envelope.SESSION:
            await self._on_session(peer, payload)
        elif ftype == envelope.PAIR_START or ftype == envelope.PAIR:
            if self.pairing is None:
                # Paired: no window, whatever the message (§5.3).
                if not (len(payload) and payload[0] == 0x7F):
                    left = _MAX_FAILED - self._failed_attempts()
                    await self.relay.send(envelope.PAIR, peer, bytes((0x7F, _NOT_IN_PAIRING_MODE, left)))
                return
            frames = self.pairing.handle(ftype, peer, payload, self.controller_id is not None)
            if self.controller_id is not None:
                self._drop_pairing()
            for f in frames:
                await self.relay.send(f[0], f[1], f[2])
        elif ftype == envelope.CLAIMED:
            if peer == self.controller_id:
                self._store_pairing(True)
                self.log("claimed by controller " + ids.format_id(peer))
        elif ftype == envelope.REMOVED:
            self.log("relay: the owner removed this device (pairing kept; factory reset to pair again)")
        elif ftype == envelope.ERROR:
            code = payload[0] if len(payload) else 0
            self.log("relay error %d for %s" % (code, ids.format_id(peer)))

    def _failed_attempts(self):
        return _failed_attempts_of(self.st)

    def _pin_controller(self, cid, cpub):
        self.controller_id = cid
        self.controller_pub = cpub
        self._ss = None
        self.claimed = False
        self._store_pairing(False)
        self._results.clear()
        self.log("paired with controller " + ids.format_id(cid))

    def _store_pairing(self, claimed):
        self.claimed = claimed
        self.st.write(
            store.PAIRING,
            {"controller_id": _hex(self.controller_id), "controller_key": _hex(self.controller_pub), "claimed": claimed},
        )

    async def _forget_controller(self, why):
        self.log("forgetting the controller: " + why)
        self.session = None
        self.controller_id = None
        self.controller_pub = None
        self._ss = None
        self.claimed = False
        self._next_e = None
        self._results.clear()
        self.st.remove(store.PAIRING)
        await self.relay.send(envelope.RELEASE, envelope.NO_PEER)
        self._pairing().open_window(reset_counter=True)

    async def _on_button(self, ev):
        if ev == "open":
            self.log("pairing button: long press")
            if self.controller_id is not None:
                self.st.write(store.ATTEMPTS, {"failed": 0})
                self.log("already paired: hold longer to factory-reset")
            else:
                self._pairing().open_window(reset_counter=True)
        elif ev == "reset":
            self.log("pairing button: factory reset")
            await self._forget_controller("factory reset")

    # ------------------------------------------------------------ sessions

    async def _reset(self, peer, reason, body=b""):
        await self.relay.send(envelope.SESSION, peer, bytes((session.RESET, reason)) + body)

    def _end_session(self, why):
        if self.session is not None:
            self.session = None
            self.log("session closed: " + why)

    async def _on_session(self, peer, payload):
        if not len(payload):
            await self._reset(peer, session.PROTOCOL_ERROR)
            return
        kind = payload[0]
        if kind == session.RESET:
            self.log("session reset by controller (ignored)")
            return
        if self.controller_id is None or peer != self.controller_id:
            await self._reset(peer, session.NOT_PAIRED)
            return
        if kind == session.HANDSHAKE1:
            await self._handshake(peer, payload[1:])
        elif kind == session.TRANSPORT:
            await self._transport(peer, payload[1:])
        else:
            await self._reset(peer, session.PROTOCOL_ERROR)

    async def _handshake(self, peer, msg1):
        e, self._next_e = self._next_e, None
        try:
            s, msg2 = session.respond(
                (self.priv, self.pub), self.controller_pub, self.id, peer, msg1, e, self._ss
            )
        except ValueError:
            self.log("handshake failed")
            await self._reset(peer, session.HANDSHAKE_FAILED, self.pub)
            return
        async with self._send_lock:
            # The new session replaces the old one once HANDSHAKE2 is on its way.
            self.session = s
            await self.relay.send(envelope.SESSION, peer, bytes((session.HANDSHAKE2,)) + msg2)
        self.log("session open %d ms after connect" % time.ticks_diff(time.ticks_ms(), self.relay.connect_started))
        await self._send_app(self._describe())
        await self._send_app(messages.state(self.ents.full_state()))

    async def _transport(self, peer, ct):
        s = self.session
        if s is None:
            await self._reset(peer, session.NO_SESSION)
            return
        try:
            pt = s.decrypt(ct)
        except session.LimitReached:
            self._end_session("limit reached")
            await self._reset(peer, session.LIMIT_REACHED)
            return
        except ValueError:
            self._end_session("decrypt failed")
            await self._reset(peer, session.DECRYPT_FAILED)
            return
        try:
            msg = messages.parse(pt)
        except messages.MessageError as e:
            self._end_session("protocol error: %s" % e)
            await self._reset(peer, session.PROTOCOL_ERROR)
            return
        t = msg["t"]
        if t == "command":
            await self._command(msg)
        elif t == "ping":
            await self._send_app(messages.pong(msg["id"]))
        elif t == "unpair":
            await self._send_app(messages.result(msg["id"]))
            await self._forget_controller("unpaired by the controller")

    async def _command(self, msg):
        cid = msg["id"]
        slot = self._results.find(cid)
        if slot >= 0:
            # A retry: the same answer again, never the action twice.
            await self._send_app(messages.result(cid, self._results.error(slot)))
            return
        key = msg["key"]
        before = self.ents.value(key)
        err = self.ents.command(key, msg["action"], msg.get("brightness"))
        self._results.put(cid, err)
        await self._send_app(messages.result(cid, err))
        if err is None:
            after = self.ents.value(key)
            if after != before:
                await self._send_app(messages.state({key: after}))

    async def _send_app(self, pt):
        """Encrypt and send one application message in the current session."""
        async with self._send_lock:
            s = self.session
            if s is None:
                return
            try:
                ct = s.encrypt(pt)
            except session.LimitReached:
                self._end_session("limit reached")
                await self._reset(s.peer, session.LIMIT_REACHED)
                return
            memstat.sample()
            await self.relay.send(envelope.SESSION, s.peer, bytes((session.TRANSPORT,)) + ct)

    async def _on_change(self, keys):
        if self.session is None:
            return
        vals = {}
        for k in keys:
            vals[k] = self.ents.value(k)
        await self._send_app(messages.state(vals))

