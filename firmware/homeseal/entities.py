# Entities (PROTOCOL.md §7) on top of the hardware layer: each knows its
# description, its state value and the actions it accepts. `hw` is the module
# homeseal.hw on a board or homeseal.hw_sim on the unix port.
import asyncio
import sys
import time

from micropython import const

from homeseal import health
from homeseal.errors import ConfigError

_POLL_MS = const(20)  # how often inputs are sampled (debounce resolution)

OK = None
UNKNOWN_ENTITY = "unknown_entity"
UNSUPPORTED_ACTION = "unsupported_action"
BAD_VALUE = "bad_value"
HARDWARE_ERROR = "hardware_error"
POSITION_UNKNOWN = "position_unknown"  # (a cover's: actuators.py)

# The arguments a turn_on may carry (PROTOCOL.md §7); messages.parse lets every
# other argument through only with its own action (value with set, ...).
_ON_ARGS = ("brightness", "rgb", "rgbw", "kelvin", "percentage")
_NO_ARGS = ()


def other_arg(args, takes):
    """True when a command carries a turn_on argument not in `takes`."""
    for k in _ON_ARGS:  # noqa: SIM110  (any() over a generator allocates, a loop does not)
        if k in args and k not in takes:
            return True
    return False


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

    # The restore setting of an output (off, on, last); None for the others.
    restore = None

    def state(self):
        return None

    def keep(self):
        """The value saved for `restore: last` (the state, unless a kind says otherwise)."""
        return self.state()

    def command(self, action, args):
        """args: the parsed command (messages.parse), whose arguments the entity
        takes by name: args.get("brightness"), args.get("value"), ... A command
        carries only the arguments of its action, so a kind checks the ones its
        actions may come with. None on success, else a result error."""
        return UNSUPPORTED_ACTION

    def poll(self, now):
        """Sample inputs; True when the state value changed."""
        return False

    # An event entity's last event ("single", "double", "long"), taken once by
    # Entities.poll; the other kinds have none.
    event = None


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

    def command(self, action, args):
        if action == "turn_on":
            on = True
        elif action == "turn_off":
            on = False
        else:
            return UNSUPPORTED_ACTION
        if other_arg(args, _NO_ARGS):
            return BAD_VALUE
        self._out.set(on)
        self._on = on
        return OK


class Light(Entity):
    """A dimmable PWM light (color_mode brightness); actuators.ColourLight adds
    the colour channels through the hooks below."""

    kind = "light"
    _takes = ("brightness",)  # the turn_on arguments it takes

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
                self._restore_colour(saved)
        pins = cfg["pins"] or (cfg["pin"],)
        self._pwms = [hw.Pwm(p, cfg["freq"], cfg["inverted"]) for p in pins]
        self._apply()

    def _restore_colour(self, saved):
        pass

    def _take_colour(self, args):
        """Check and take the command's colour; False to refuse it."""
        return True

    def _apply(self):
        self._pwms[0].set(self._level if self._on else 0)

    def state(self):
        return {"on": self._on, "brightness": self._level}

    def command(self, action, args):
        if action == "turn_on":
            if other_arg(args, self._takes):
                return BAD_VALUE  # a colour this light's mode does not take, a percentage
            b = args.get("brightness")
            if b is not None and not 1 <= b <= 255:
                return BAD_VALUE
            if not self._take_colour(args):
                return BAD_VALUE
            if b is not None:
                self._level = b
            self._on = True
        elif action == "turn_off":
            self._on = False
        else:
            return UNSUPPORTED_ACTION
        self._apply()
        return OK


class Polled(Entity):
    """An entity that reads its value every `interval` seconds: a sensor, a text
    sensor. `_sample()` is the subclass's reading; one that fails reports
    "unknown" (None) and never stops the device."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self._interval = cfg["interval"] * 1000
        self._next = None
        self._value = None

    def state(self):
        return self._value

    def _read(self):
        try:
            v = self._sample()
        except Exception:
            v = None
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


class Sensor(Polled):
    kind = "sensor"

    def __init__(self, cfg, hw):
        super().__init__(cfg)
        self._extra = {}
        for k in ("device_class", "unit", "state_class"):
            if cfg[k] is not None:
                self._extra[k] = cfg[k]
        src = cfg["source"]
        if src == "adc":
            self._src = hw.Adc(cfg["pin"]).read
        elif src == "internal_temp":
            self._src = hw.InternalTemp().read
        elif src == "wifi_signal":
            self._src = hw.wifi_signal
        else:
            self._src = getattr(health, src)  # uptime, free_heap, reconnects
        self._scale = cfg["scale"]  # None for a health source: its integer as it is
        self._offset = cfg["offset"]
        self._precision = cfg["precision"]
        self._read()

    def describe(self):
        d = super().describe()
        d.update(self._extra)
        return d

    def _sample(self):
        v = self._src()
        if self._scale is not None:
            v = round(v * self._scale + self._offset, self._precision)
            if self._precision == 0:
                v = int(v)
        return v


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

    def command(self, action, args):
        if action != "press":
            return UNSUPPORTED_ACTION  # (press carries no argument: messages.parse)
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


class Number(Entity):
    """A set-point: a PWM duty, a servo angle (50 Hz, pulse_us), or a value kept."""

    kind = "number"

    def __init__(self, cfg, hw, saved=None):
        super().__init__(cfg)
        self.restore = cfg["restore"]
        self._min = cfg["min"]
        self._max = cfg["max"]
        self._step = cfg["step"]
        self._extra = {}
        for k in ("unit", "mode", "device_class"):
            if cfg[k] is not None:
                self._extra[k] = cfg[k]
        self._servo = cfg["pulse_us"] if cfg["output"] == "servo" else None
        self._pwm = None
        if cfg["output"] != "none":
            self._pwm = hw.Pwm(cfg["pin"], 50 if self._servo else cfg["freq"], cfg["inverted"])
        v = cfg["initial"]
        if (
            self.restore == "last"
            and type(saved) in (int, float)
            and self._min <= saved <= self._max
        ):
            v = saved
        self._set(self._snap(v))

    def describe(self):
        d = super().describe()
        d["min"] = self._min
        d["max"] = self._max
        d["step"] = self._step
        d.update(self._extra)
        return d

    def state(self):
        return self._value

    def _snap(self, v):
        # The nearest step from min, never past max; whole numbers stay ints.
        v = self._min + round((v - self._min) / self._step) * self._step
        v = min(v, self._max)
        if type(self._min) is int and type(self._step) is int:
            return int(v)
        return round(v, 6)

    def _set(self, v):
        self._value = v
        if self._pwm is None:
            return
        f = (v - self._min) / (self._max - self._min)
        if self._servo:
            lo, hi = self._servo
            self._pwm.duty(round((lo + f * (hi - lo)) * 65535 / 20000))
        else:
            self._pwm.duty(round(f * 65535))

    def command(self, action, args):
        if action != "set":
            return UNSUPPORTED_ACTION
        value = args.get("value")
        if value is None or not self._min <= value <= self._max:
            return BAD_VALUE
        self._set(self._snap(value))
        return OK


class Select(Entity):
    """One of a set of options; with `pins`, option i drives pins[i] alone."""

    kind = "select"

    def __init__(self, cfg, hw, saved=None):
        super().__init__(cfg)
        self.restore = cfg["restore"]
        self._options = cfg["options"]
        self._outs = [hw.Output(p, cfg["inverted"]) for p in cfg["pins"] or ()]
        opt = cfg["initial"]
        if self.restore == "last" and saved in self._options:
            opt = saved
        self._select(opt)

    def describe(self):
        d = super().describe()
        d["options"] = self._options
        return d

    def state(self):
        return self._option

    def _select(self, opt):
        i = self._options.index(opt)
        # Off first, then on: two outputs are never on together.
        for j, out in enumerate(self._outs):
            if j != i:
                out.set(False)
        if self._outs:
            self._outs[i].set(True)
        self._option = opt

    def command(self, action, args):
        if action != "select":
            return UNSUPPORTED_ACTION
        option = args.get("option")
        if option not in self._options:
            return BAD_VALUE
        self._select(option)
        return OK


class TextSensor(Polled):
    """A string the device reports (its address, its last restart reason)."""

    kind = "text_sensor"

    def __init__(self, cfg, hw):
        super().__init__(cfg)
        self._src = hw.ip_address if cfg["source"] == "ip" else hw.restart_reason
        self._read()

    def _sample(self):
        v = self._src()
        return None if v is None else str(v)[:64]


class Event(Entity):
    """A wall button: single, double and long presses (PROTOCOL.md §7)."""

    kind = "event"

    def __init__(self, cfg, hw):
        super().__init__(cfg)
        self._in = Debounced(hw, cfg["pin"], cfg["debounce_ms"])
        self._pressed = 1 if cfg["inverted"] else 0
        self._types = types = cfg["types"]
        # A type not sent is not told apart either: without "double" every press
        # is a single at once, without "long" a long hold is a press like any other.
        self._long = cfg["long_ms"] if "long" in types else None
        self._double = cfg["double_ms"] if "double" in types else 0
        self._down_at = None  # when the current press began
        self._long_sent = False
        self._up_at = None  # when a first short press ended (waiting for a second)

    def describe(self):
        d = super().describe()
        d["event_types"] = self._types
        return d

    def _fire(self, etype):
        if etype in self._types:
            self.event = etype

    def poll(self, now):
        if self._in.poll(now):
            if self._in.level == self._pressed:
                self._down_at = now
                self._long_sent = False
            elif self._down_at is not None:
                self._down_at = None
                if self._long_sent:
                    pass  # the long press was sent while held
                elif self._up_at is not None:
                    self._up_at = None
                    self._fire("double")
                elif self._double:
                    self._up_at = now
                else:
                    self._fire("single")
        down = self._down_at
        if down is not None and self._long is not None and not self._long_sent:
            if time.ticks_diff(now, down) >= self._long:
                self._long_sent = True
                self._up_at = None  # a first short press before it is dropped
                self._fire("long")
        elif (
            down is None
            and self._up_at is not None
            and time.ticks_diff(now, self._up_at) >= self._double
        ):
            # No second press within the window: the first was a single.
            self._up_at = None
            self._fire("single")
        return False


_CLASSES = {
    "switch": Switch,
    "light": Light,
    "sensor": Sensor,
    "binary_sensor": BinarySensor,
    "button": Button,
    "number": Number,
    "select": Select,
    "text_sensor": TextSensor,
    "event": Event,
}
# The kinds whose state can come back after a reboot (restore: last).
_OUTPUTS = ("switch", "light", "fan", "cover", "number", "select")


def _class(c):
    """The class of an entity's config. A colour light, a fan or a cover is in
    actuators.py, which only a config that has one loads (it costs RAM)."""
    kind = c["kind"]
    if kind == "fan" or kind == "cover" or (kind == "light" and c["color_mode"] != "brightness"):
        from homeseal import actuators

        return actuators.CLASSES[kind]
    return _CLASSES[kind]


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
                if c["kind"] in _OUTPUTS:
                    self.all.append(_class(c)(c, hw, saved.get(c["key"])))
                else:
                    self.all.append(_class(c)(c, hw))
            except Exception as e:
                # e.g. a pin this board does not have: name the field, stop cleanly.
                if c.get("pin") is not None:
                    field, what = ".pin", "pin %s" % c["pin"]
                else:  # a colour light's pins, a cover's outputs
                    field, what = "", "pins"
                raise ConfigError(
                    "entities[%d]%s" % (i, field),
                    "cannot set up %s %s: %s" % (c["kind"], what, e),
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
            if e.restore == "last":
                s[e.key] = e.keep()
        return s or None

    def restores(self, keys):
        """True when one of `keys` is a restore: last output (a cover that stopped
        by itself: its position is saved like a command's change)."""
        for k in keys:
            e = self._by_key.get(k)
            if e is not None and e.restore == "last":
                return True
        return False

    def full_state(self):
        s = {}
        for e in self.all:
            s[e.key] = e.state()
        return s

    def value(self, key):
        e = self._by_key.get(key)
        return None if e is None else e.state()

    def command(self, key, action, args):
        """None on success, else a PROTOCOL.md §7 result error. args: the parsed
        command, or any dict of its arguments by name."""
        e = self._by_key.get(key)
        if e is None:
            return UNKNOWN_ENTITY
        try:
            return e.command(action, args)
        except Exception:
            return HARDWARE_ERROR

    def poll(self, now, events=None):
        """Keys whose state changed since the last poll (a list, maybe empty);
        (key, type) of each event entity that fired go into `events`."""
        changed = []
        for e in self.all:
            if e.poll(now):
                changed.append(e.key)
            if e.event is not None:
                if events is not None:
                    events.append((e.key, e.event))
                e.event = None
        return changed

    async def run(self, on_change, button=None, on_button=None, on_event=None):
        """Sample inputs forever; call on_change(keys) / on_button(event) /
        on_event(key, type)."""
        events = []
        while True:
            now = time.ticks_ms()
            try:
                keys = self.poll(now, events)
                if keys:
                    await on_change(keys)
                while events:
                    key, etype = events.pop(0)
                    if on_event is not None:
                        await on_event(key, etype)
                if button is not None:
                    ev = button.poll(now)
                    if ev:
                        await on_button(ev)
            except Exception as e:
                # Keep sampling whatever one pass ran into.
                sys.print_exception(e)
            await asyncio.sleep_ms(_POLL_MS)
