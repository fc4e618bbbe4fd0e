# The device: identity, the pinned controller, and the glue that dispatches
# relay frames to pairing (PAIR_START, PAIR) and the session responder
# (SESSION), application messages to the entities, and entity changes back.
# The bytes of each protocol layer are built and parsed by that layer's
# module; this one only moves them between the layers.
import asyncio
import binascii
import gc
import sys
import time

from micropython import const

from homeseal import (
    __version__,
    entities,
    envelope,
    ids,
    memstat,
    messages,
    pairing,
    relay,
    session,
    store,
    unload,
)
from homeseal.errors import ConfigError

_TICK_MS = const(1000)


def log(msg):
    print("homeseal:", msg)


def _hex(b):
    return binascii.hexlify(b).decode()


class Device:
    def __init__(self, cfg, st, hw, log=log, window_ms=None, bufs=None, attempt_ms=0):
        # window_ms, attempt_ms: the pairing window and an attempt's slot, when
        # not the 15 minutes and 30 s of §5.3 (tests).
        self.cfg = cfg
        self.st = st
        self.hw = hw
        self.log = log
        pb = cfg["pairing_button"]
        from homeseal import bootstate

        boot = bootstate.load(st, pb is not None, hw.power_on_boot(), log)
        del bootstate
        unload("bootstate")
        self.priv, self.pub, self.controller_id, self.controller_pub, self.claimed, failed = boot
        self.id = ids.endpoint_id(self.pub)
        self.ents = entities.Entities(cfg["entities"], hw, self._saved_outputs())
        # What the outputs record holds (or, before the first write, what the
        # outputs booted with), and when a command first changed an output since.
        self._outputs_saved = self.ents.restorable()
        self._outputs_changed = None
        self.button = entities.PairingButton(pb, hw) if pb else None
        self.pairing = pairing.Pairing(
            st,
            self.id,
            self.pub,
            failed,
            self._pin_controller,
            log,
            window_ms or pairing.WINDOW_MS,
            attempt_ms,
        )
        self.responder = session.Responder((self.priv, self.pub), self.id, log)
        self.responder.pin(self.controller_id, self.controller_pub)
        self.relay = relay.Relay(cfg["relay"], self.priv, self.pub, self.id, log, bufs)
        self.relay.on_frame = self._on_frame
        self.relay.on_up = self._on_up
        # Held from sealing a message to handing it to the relay, so that the
        # wire order is the Noise counter order (and HANDSHAKE2 goes first).
        self._send_lock = asyncio.Lock()
        self._results = messages.ResultCache(32)
        try:
            self._describe()
            messages.state(self.ents.full_state())
        except messages.MessageError:
            raise ConfigError(
                "entities", "too many entities: describe/state would exceed 3072 bytes"
            )
        log("device id " + ids.format_id(self.id))
        if self.controller_id is None:
            self.pairing.open_window()
        else:
            log("paired with controller " + ids.format_id(self.controller_id))

    def _saved_outputs(self):
        try:
            return self.st.read(store.OUTPUTS)
        except store.StoreError as e:
            self.log("outputs record unreadable (%s): restore: last outputs start off" % e)
            return None

    def _save_outputs(self, now):
        """save_delay after the first change since the last check, write the outputs'
        states if they differ from the record: a burst of changes is one write, a
        change undone meanwhile is none, and a quiet tick costs one comparison."""
        changed = self._outputs_changed
        if changed is None or time.ticks_diff(now, changed) < self.cfg["save_delay"] * 1000:
            return
        self._outputs_changed = None
        current = self.ents.restorable()
        if current != self._outputs_saved:
            self.st.write(store.OUTPUTS, current)
            self._outputs_saved = current

    def _describe(self):
        # Encoded when needed (once per session) rather than kept in RAM.
        return messages.describe(
            __version__, self.cfg["model"], self.cfg["name"], self.ents.describe()
        )

    # ------------------------------------------------------------ run

    async def run(self, control=None):
        # First the watchdog, so that nothing after it can hang the device for good;
        # any task's unexpected exception restarts the device (logged) instead of
        # leaving it half-running.
        asyncio.get_event_loop().set_exception_handler(self._on_crash)
        asyncio.create_task(self._feed(self.hw.Watchdog(self.cfg["watchdog_ms"])))
        if control is not None:
            await self.hw.start_control(control[0], control[1])
            self.log("control socket %s:%d" % control)
        self.responder.precompute()  # the ephemeral key, ready for the first HANDSHAKE1
        await self.hw.network_up(self.cfg["wifi"], self.log)
        asyncio.create_task(
            self.ents.run(self._on_change, self.button, self._on_button, self._on_event)
        )
        asyncio.create_task(self._periodic())
        await self.relay.run()

    async def _feed(self, watchdog):
        # Fed from the event loop: a loop that stops running stops feeding it.
        period = self.cfg["watchdog_ms"] // 4
        while True:
            watchdog.feed()
            await asyncio.sleep_ms(period)

    def _on_crash(self, loop, context):
        e = context.get("exception")
        if e is not None:
            sys.print_exception(e)
        self.hw.restart("unexpected error: %s" % (context.get("message") or repr(e)))

    async def _periodic(self):
        interval = self.cfg["state_interval"] * 1000
        next_state = time.ticks_add(time.ticks_ms(), interval)
        while True:
            await asyncio.sleep_ms(_TICK_MS)
            now = time.ticks_ms()
            try:
                self.pairing.tick(now)
                self._save_outputs(now)
                if time.ticks_diff(now, next_state) >= 0:
                    next_state = time.ticks_add(now, interval)
                    if self.responder.is_open:
                        await self._send_app(messages.state(self.ents.full_state()))
                # The next handshake's X25519 work now, not when HANDSHAKE1 arrives.
                self.responder.precompute()
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
            frames = self.pairing.handle(ftype, peer, payload, self.controller_id is not None)
            for f in frames:
                await self.relay.send(f[0], f[1], f[2])
        elif ftype == envelope.CLAIMED:
            if peer == self.controller_id:
                self._store_pairing(True)
                self.log("claimed by controller " + ids.format_id(peer))
        elif ftype == envelope.REMOVED:
            self.log(
                "relay: the owner removed this device (pairing kept; factory reset to pair again)"
            )
        elif ftype == envelope.ERROR:
            code = payload[0] if len(payload) else 0
            self.log("relay error %d for %s" % (code, ids.format_id(peer)))

    def _pin_controller(self, cid, cpub):
        self.controller_id = cid
        self.controller_pub = cpub
        self.responder.pin(cid, cpub)
        self.claimed = False
        self._store_pairing(False)
        self._results.clear()
        self.log("paired with controller " + ids.format_id(cid))

    def _store_pairing(self, claimed):
        self.claimed = claimed
        self.st.write(
            store.PAIRING,
            {
                "controller_id": _hex(self.controller_id),
                "controller_key": _hex(self.controller_pub),
                "claimed": claimed,
            },
        )

    async def _forget_controller(self, why):
        self.log("forgetting the controller: " + why)
        self.controller_id = None
        self.controller_pub = None
        self.responder.pin(None, None)
        self.claimed = False
        self._results.clear()
        # The fresh counter first: a cut before the pairing record leaves the
        # device paired (no window), never unpaired with the old count's window.
        self.pairing.reset_counter()
        self.st.write(store.PAIRING, {"controller_id": None})
        await self.relay.send(envelope.RELEASE, envelope.NO_PEER)
        self.pairing.open_window()

    async def _on_button(self, ev):
        if ev == "open":
            self.log("pairing button: long press")
            if self.controller_id is not None:
                self.pairing.reset_counter()
                self.log("already paired: hold longer to factory-reset")
            else:
                self.pairing.open_window(reset_counter=True)
        elif ev == "reset":
            self.log("pairing button: factory reset")
            await self._forget_controller("factory reset")

    # ------------------------------------------------------------ sessions

    async def _on_session(self, peer, payload):
        async with self._send_lock:
            reply, pt, opened = self.responder.receive(peer, payload)
            if reply is not None:
                await self.relay.send(envelope.SESSION, peer, reply)
        if opened:
            # The controller's first message confirmed the new session (§6):
            # describe and the full state in it, then that message's answer.
            ms = time.ticks_diff(time.ticks_ms(), self.relay.connect_started)
            self.log("session open %d ms after connect" % ms)
            await self._send_app(self._describe())
            await self._send_app(messages.state(self.ents.full_state()))
        if pt is not None:
            await self._on_message(peer, pt)

    async def _on_message(self, peer, pt):
        try:
            msg = messages.parse(pt)
        except messages.MessageError as e:
            await self.relay.send(envelope.SESSION, peer, self.responder.protocol_error(str(e)))
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
        err = self.ents.command(key, msg["action"], msg)  # the arguments, by name
        self._results.put(cid, err)
        await self._send_app(messages.result(cid, err))
        if err is None:
            after = self.ents.value(key)
            if after != before:
                if self._outputs_changed is None:
                    self._outputs_changed = time.ticks_ms()  # _save_outputs looks later
                await self._send_app(messages.state({key: after}))

    async def _send_app(self, pt):
        """Send one application message in the current session (if any)."""
        async with self._send_lock:
            out = self.responder.seal(pt)
            if out is not None:
                memstat.sample()
                await self.relay.send(envelope.SESSION, self.responder.peer, out)

    async def _on_event(self, key, etype):
        # A press with no session is not kept: sent later it would fire automations
        # at the wrong time (PROTOCOL.md §7).
        if self.responder.is_open:
            await self._send_app(messages.event(key, etype))

    async def _on_change(self, keys):
        if self._outputs_changed is None and self.ents.restores(keys):
            self._outputs_changed = time.ticks_ms()  # a cover stopped: its position is saved
        if not self.responder.is_open:
            return
        vals = {}
        for k in keys:
            vals[k] = self.ents.value(k)
        await self._send_app(messages.state(vals))
