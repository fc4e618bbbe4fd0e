# Entities (PROTOCOL.md §7) on top of the hardware layer: each knows its
# description, its state value and the actions it accepts. `hw` is the module
# homeseal.hw on a board or homeseal.hw_sim on the unix port.
import asyncio
import sys
import time

from micropython import const

from homeseal.errors import ConfigError

_POLL_MS = const(20)  # how often inputs are sampled (debounce resolution)

OK = None
UNKNOWN_ENTITY = "unknown_entity"
UNSUPPORTED_ACTION = "unsupported_action"
BAD_VALUE = "bad_value"
HARDWARE_ERROR = "hardware_error"


class Entity:
    kind = ""

    def __init__(self, cfg):
        self.key = cfg["key"]
        self.name = cfg["name"]
        self._category = cfg["category"]
        self._disabled = cfg["disabled_by_default"]

    def describe(self):
        d = {"key": self.key, "kind": self.kind, "name": self.name}
        if self._category:
            d["category"] = self._category
        if self._disabled:
            d["disabled_by_default"] = True
        return d

    def state(self):
        return None

    def command(self, action, brightness):
        return UNSUPPORTED_ACTION

    def poll(self, now):
        """Sample inputs; True when the state value changed."""
        return False


class Switch(Entity):
    kind = "switch"

    def __init__(self, cfg, hw, saved=None):
        super().__init__(cfg)
        self.restore = cfg["restore"]
        last = saved is True and self.restore == "last"
        self._on = self.restore == "on" or last
        self._out = hw.Output(cfg["pin"], cfg["inverted"])
        self._out.set(self._on)

    def state(self):
        return self._on

    def command(self, action, brightness):
        if action == "turn_on":
            on = True
        elif action == "turn_off":
            on = False
        else:
            return UNSUPPORTED_ACTION
        if brightness is not None:
            return BAD_VALUE
        self._out.set(on)
        self._on = on
        return OK


class Light(Entity):
    kind = "light"

    def __init__(self, cfg, hw, saved=None):
        super().__init__(cfg)
        self.restore = cfg["restore"]
        self._on = self.restore == "on"
        self._level = 255  # what turn_on without brightness restores
        if self.restore == "last" and type(saved) is dict:
            level = saved.get("brightness")
            if type(level) is int and 1 <= level <= 255:
                self._level = level
                self._on = saved.get("on") is True
        self._pwm = hw.Pwm(cfg["pin"], cfg["freq"], cfg["inverted"])
        self._pwm.set(self._level if self._on else 0)

    def state(self):
        return {"on": self._on, "brightness": self._level}

    def command(self, action, brightness):
        if action == "turn_on":
            if brightness is not None:
                if not 1 <= brightness <= 255:
                    return BAD_VALUE
                self._level = brightness
            self._pwm.set(self._level)
            self._on = True
        elif action == "turn_off":
            if brightness is not None:
                return BAD_VALUE
            self._pwm.set(0)
            self._on = False
        else:
            return UNSUPPORTED_ACTION
        return OK


class Sensor(Entity):
    kind = "sensor"

    def __init__(self, cfg, hw):
        super().__init__(cfg)
        self._extra = {}
        for k in ("device_class", "unit", "state_class"):
            if cfg[k] is not None:
                self._extra[k] = cfg[k]
        self._src = hw.Adc(cfg["pin"]) if cfg["source"] == "adc" else hw.InternalTemp()
        self._scale = cfg["scale"]
        self._offset = cfg["offset"]
        self._precision = cfg["precision"]
        self._interval = cfg["interval"] * 1000
        self._next = None
        self._value = None
        self._read()

    def describe(self):
        d = super().describe()
        d.update(self._extra)
        return d

    def state(self):
        return self._value

    def _read(self):
        try:
            v = round(self._src.read() * self._scale + self._offset, self._precision)
            if self._precision == 0:
                v = int(v)
        except Exception:
            v = None  # a failing sensor reports "unknown", it does not stop the device
        changed = v != self._value
        self._value = v
        return changed

    def poll(self, now):
        if self._next is None:
            self._next = time.ticks_add(now, self._interval)
        if time.ticks_diff(now, self._next) < 0:
            return False
        self._next = time.ticks_add(now, self._interval)
        return self._read()


class Debounced:
    """A pulled-up input whose level must hold for `debounce_ms` before it counts."""

    def __init__(self, hw, pin, debounce_ms):
        self._in = hw.Input(pin)
        self._ms = debounce_ms
        self.level = self._in.value()
        self._cand = self.level
        self._since = time.ticks_ms()

    def poll(self, now):
        """True when the debounced level changed."""
        raw = self._in.value()
        if raw != self._cand:
            self._cand = raw
            self._since = now
        if self._cand != self.level and time.ticks_diff(now, self._since) >= self._ms:
            self.level = self._cand
            return True
        return False


class BinarySensor(Entity):
    kind = "binary_sensor"

    def __init__(self, cfg, hw):
        super().__init__(cfg)
        self._dc = cfg["device_class"]
        self._inv = cfg["inverted"]
        self._in = Debounced(hw, cfg["pin"], cfg["debounce_ms"])

    def describe(self):
        d = super().describe()
        if self._dc is not None:
            d["device_class"] = self._dc
        return d

    def state(self):
        return (self._in.level == 1) != self._inv

    def poll(self, now):
        return self._in.poll(now)


class Button(Entity):
    kind = "button"

    def __init__(self, cfg, hw):
        super().__init__(cfg)
        self._out = hw.Output(cfg["pin"], cfg["inverted"])
        self._pulse = cfg["pulse_ms"]
        self._busy = False

    def command(self, action, brightness):
        if action != "press":
            return UNSUPPORTED_ACTION
        if brightness is not None:
            return BAD_VALUE
        if not self._busy:
            self._out.set(True)
            self._busy = True
            asyncio.create_task(self._release())
        return OK

    async def _release(self):
        try:
            await asyncio.sleep_ms(self._pulse)
        finally:
            self._out.set(False)
            self._busy = False


_CLASSES = {
    "switch": Switch,
    "light": Light,
    "sensor": Sensor,
    "binary_sensor": BinarySensor,
    "button": Button,
}


class PairingButton:
    """The device's pairing button: a long press opens the pairing window, a
    longer hold is a factory reset. poll() returns "open", "reset" or None,
    each once per press, while the button is still held."""

    def __init__(self, cfg, hw):
        self._in = Debounced(hw, cfg["pin"], 30)
        self._pressed_level = 1 if cfg["inverted"] else 0
        self._long = cfg["long_press_ms"]
        self._reset = cfg["factory_reset_ms"]
        self._down_at = None
        self._fired = 0

    def poll(self, now):
        self._in.poll(now)
        if self._in.level != self._pressed_level:
            self._down_at = None
            return None
        if self._down_at is None:
            self._down_at = now
            self._fired = 0
        held = time.ticks_diff(now, self._down_at)
        if self._fired < 2 and held >= self._reset:
            self._fired = 2
            return "reset"
        if self._fired < 1 and held >= self._long:
            self._fired = 1
            return "open"
        return None


class Entities:
    def __init__(self, cfgs, hw, saved=None):
        # saved: the outputs' states as restorable() returned them before a reboot.
        saved = saved or {}
        self.all = []
        for i, c in enumerate(cfgs):
            try:
                if c["kind"] in ("switch", "light"):
                    self.all.append(_CLASSES[c["kind"]](c, hw, saved.get(c["key"])))
                else:
                    self.all.append(_CLASSES[c["kind"]](c, hw))
            except Exception as e:
                # e.g. a pin this board does not have: name the field, stop cleanly.
                raise ConfigError(
                    "entities[%d].pin" % i,
                    "cannot set up %s pin %s: %s" % (c["kind"], c.get("pin"), e),
                )
        self._by_key = {}
        for e in self.all:
            self._by_key[e.key] = e

    def describe(self):
        return [e.describe() for e in self.all]

    def restorable(self):
        """The states of the outputs that come back as they were after a reboot
        (restore: last), or None when there are none."""
        s = {}
        for e in self.all:
            if getattr(e, "restore", None) == "last":
                s[e.key] = e.state()
        return s or None

    def full_state(self):
        s = {}
        for e in self.all:
            s[e.key] = e.state()
        return s

    def value(self, key):
        e = self._by_key.get(key)
        return None if e is None else e.state()

    def command(self, key, action, brightness):
        """None on success, else a PROTOCOL.md §7 result error."""
        e = self._by_key.get(key)
        if e is None:
            return UNKNOWN_ENTITY
        try:
            return e.command(action, brightness)
        except Exception:
            return HARDWARE_ERROR

    def poll(self, now):
        """Keys whose state changed since the last poll (a list, maybe empty)."""
        changed = []
        for e in self.all:
            if e.poll(now):
                changed.append(e.key)
        return changed

    async def run(self, on_change, button=None, on_button=None):
        """Sample inputs forever; call on_change(keys) / on_button(event)."""
        while True:
            now = time.ticks_ms()
            try:
                keys = self.poll(now)
                if keys:
                    await on_change(keys)
                if button is not None:
                    ev = button.poll(now)
                    if ev:
                        await on_button(ev)
            except Exception as e:
                # Keep sampling whatever one pass ran into.
                sys.print_exception(e)
            await asyncio.sleep_ms(_POLL_MS)
