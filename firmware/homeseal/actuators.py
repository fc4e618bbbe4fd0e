# The entity kinds a device loads only when its config has one (entities.py
# imports this module then): colour lights (rgb, rgbw, color_temp), fans and
# covers (PROTOCOL.md §7). A device without them does not pay their RAM.
import time

from micropython import const

from homeseal.entities import (
    BAD_VALUE,
    OK,
    POSITION_UNKNOWN,
    UNSUPPORTED_ACTION,
    Entity,
    Light,
    other_arg,
)

# A colour light's state key and argument by color_mode.
_COLOUR_KEY = {"rgb": "rgb", "rgbw": "rgbw", "color_temp": "kelvin"}


class ColourLight(Light):
    """rgb / rgbw channels, or a warm and a cold channel (color_temp), on PWM pins."""

    def __init__(self, cfg, hw, saved=None):
        self._mode = cfg["color_mode"]
        self._ckey = ckey = _COLOUR_KEY[self._mode]  # "rgb", "rgbw" or "kelvin"
        self._takes = ("brightness", ckey)
        # The colour: a list of 3 or 4 channels 0..255, or kelvin (an int). Never
        # changed in place: state() hands it out, and a new one replaces it.
        if ckey == "kelvin":
            self._lo = cfg["min_kelvin"]
            self._hi = cfg["max_kelvin"]
            self._color = (self._lo + self._hi + 1) // 2
        else:
            self._color = [255] * (3 if ckey == "rgb" else 4)
        super().__init__(cfg, hw, saved)

    def _valid(self, c):
        """A colour this light takes: kelvin within its range, or its channels."""
        if self._ckey == "kelvin":
            return type(c) is int and self._lo <= c <= self._hi
        if type(c) is not list or len(c) != (3 if self._ckey == "rgb" else 4):
            return False
        for v in c:  # noqa: SIM110  (any() over a generator allocates, a loop does not)
            if type(v) is not int or not 0 <= v <= 255:
                return False
        return True

    def _restore_colour(self, saved):
        if self._valid(saved.get(self._ckey)):
            self._color = saved[self._ckey]

    def _take_colour(self, args):
        c = args.get(self._ckey)
        if c is None:
            return True
        if not self._valid(c):
            return False  # kelvin outside min_kelvin..max_kelvin
        self._color = c
        return True

    def describe(self):
        d = super().describe()
        d["color_mode"] = self._mode
        if self._ckey == "kelvin":
            d["min_kelvin"] = self._lo
            d["max_kelvin"] = self._hi
        return d

    def state(self):
        s = super().state()
        s[self._ckey] = self._color
        return s

    def _apply(self):
        # Duties 0..65535 in integers (no float per command): brightness b over
        # 255 levels is b * 257; an rgb/rgbw channel c scales it by c / 255; a
        # color_temp light gives (kelvin - min) / (max - min) of it to the cold
        # channel and the rest to the warm one (pins: [warm, cold]).
        b = self._level if self._on else 0
        pwms = self._pwms
        if self._ckey == "kelvin":
            full = b * 257
            span = self._hi - self._lo
            cold = (2 * full * (self._color - self._lo) + span) // (2 * span)
            pwms[0].duty(full - cold)
            pwms[1].duty(cold)
        else:
            c = self._color
            for i in range(len(pwms)):
                pwms[i].duty((c[i] * b * 257 + 127) // 255)


class Fan(Entity):
    """A PWM fan speed, with an optional direction output (on = reverse)."""

    kind = "fan"

    def __init__(self, cfg, hw, saved=None):
        super().__init__(cfg)
        self.restore = cfg["restore"]
        self._on = self.restore == "on"
        self._pct = 100  # what turn_on without percentage restores
        self._reverse = False
        if self.restore == "last" and type(saved) is dict:
            pct = saved.get("percentage")
            if type(pct) is int and 1 <= pct <= 100:
                self._pct = pct
                self._on = saved.get("on") is True
                self._reverse = saved.get("direction") == "reverse"
        self._pwm = hw.Pwm(cfg["pin"], cfg["freq"], cfg["inverted"])
        self._dir = None
        if cfg["direction_pin"] is not None:
            self._dir = hw.Output(cfg["direction_pin"], cfg["inverted"])
        else:
            self._reverse = False
        self._apply()

    def describe(self):
        d = super().describe()
        if self._dir is not None:
            d["reversible"] = True
        return d

    def state(self):
        s = {"on": self._on, "percentage": self._pct}
        if self._dir is not None:
            s["direction"] = "reverse" if self._reverse else "forward"
        return s

    def _apply(self):
        if self._dir is not None:
            self._dir.set(self._reverse)
        self._pwm.duty((self._pct * 65535 + 50) // 100 if self._on else 0)

    def command(self, action, args):
        if action == "turn_on":
            if other_arg(args, ("percentage",)):
                return BAD_VALUE
            p = args.get("percentage")
            if p is not None:
                if not 1 <= p <= 100:
                    return BAD_VALUE
                self._pct = p
            self._on = True
        elif action == "turn_off":
            self._on = False
        elif action == "set_direction":
            if self._dir is None:
                return UNSUPPORTED_ACTION
            d = args.get("direction")
            if d is None:
                return BAD_VALUE
            self._reverse = d == "reverse"
        else:
            return UNSUPPORTED_ACTION
        self._apply()
        return OK


_FULL = const(100000)  # a cover's position in integer steps: 1000 per percent
_PUSH_MS = const(1000)  # a moving cover's state, once a second


class Cover(Entity):
    """Two outputs (open, close), never on together, and a position estimated
    from the travel times: 0 closed .. 100 open, None until the device knows it.
    The motion runs from Entities.poll (every 20 ms)."""

    kind = "cover"

    def __init__(self, cfg, hw, saved=None):
        super().__init__(cfg)
        self.restore = cfg["restore"]
        self._dc = cfg["device_class"]
        self._open_ms = max(1, round(cfg["open_time"] * 1000))
        self._close_ms = max(1, round(cfg["close_time"] * 1000))
        self._interlock = cfg["interlock_ms"]
        # Both off at boot, whatever was saved.
        inv = cfg["inverted"]
        self._outs = (hw.Output(cfg["open_pin"], inv), hw.Output(cfg["close_pin"], inv))
        self._known = self.restore == "last" and type(saved) is int and 0 <= saved <= 100
        self._pos = saved * 1000 if self._known else 0  # steps; a guess while not known
        self._kept = saved if self._known else None  # the position when motion last stopped
        self._motion = 0  # where it is going: 1 opening, -1 closing, 0 idle
        self._running = 0  # the output that is on: 1 open, -1 close, 0 none
        self._target = 0  # steps
        self._at = 0  # ticks: the last position update, or when a waiting output may go on
        self._rem = 0  # travel not yet a whole step (ms x steps)
        self._push = 0  # ticks: the next state push while moving
        self._off_dir = 0  # the output a reversal last switched off, and when
        self._off_at = 0

    def describe(self):
        d = super().describe()
        if self._dc is not None:
            d["device_class"] = self._dc
        return d

    def _position(self):
        return (self._pos + 500) // 1000 if self._known else None

    def state(self):
        m = self._motion
        return {
            "position": self._position(),
            "motion": "opening" if m > 0 else "closing" if m < 0 else "idle",
        }

    def keep(self):
        return self._kept

    def _out(self, d):
        return self._outs[0] if d > 0 else self._outs[1]

    def _advance(self, now):
        # The travel since the last update, in steps of the running direction's time.
        d = self._running
        if not d:
            return
        dt = time.ticks_diff(now, self._at)
        if dt <= 0:
            return
        self._at = now
        # Steps = dt * _FULL / travel, the division's remainder carried to the next
        # update: exact over the whole travel, in small ints.
        ms = self._open_ms if d > 0 else self._close_ms
        n = dt * _FULL + self._rem
        self._rem = n % ms
        n //= ms
        self._pos = min(_FULL, self._pos + n) if d > 0 else max(0, self._pos - n)

    def _switch_off(self):
        if self._running:
            self._out(self._running).set(False)
            self._running = 0
            self._rem = 0

    def _stop(self, now):
        self._advance(now)
        self._switch_off()
        self._motion = 0
        self._kept = self._position()  # None while unknown

    def _go(self, d, target, now):
        # Toward target (steps) in direction d. A reversal switches the running
        # output off first, and the other goes on only interlock_ms after that
        # (also when the wait was cut short by a stop and the command comes again).
        self._advance(now)
        self._target = target
        if self._motion == d:
            return  # already going (or waiting to go) that way: a new target only
        if not self._known:
            # From an unknown position the whole travel time, from the far end.
            self._pos = 0 if d > 0 else _FULL
        if self._running:  # the other direction's output (running is 0 or the motion)
            self._off_dir = self._running
            self._off_at = now
            self._switch_off()
        self._motion = d
        self._push = time.ticks_add(now, _PUSH_MS)
        if self._off_dir == -d and time.ticks_diff(now, self._off_at) < self._interlock:
            self._at = time.ticks_add(self._off_at, self._interlock)  # poll switches it on
        else:
            self._out(d).set(True)
            self._running = d
            self._at = now

    def command(self, action, args):
        now = time.ticks_ms()
        if action == "open":
            target = 100
        elif action == "close":
            target = 0
        elif action == "stop":
            self._stop(now)
            return OK
        elif action == "set_position":
            target = args.get("position")
            if target is None:
                return BAD_VALUE
            if not self._known:
                return POSITION_UNKNOWN
        else:
            return UNSUPPORTED_ACTION
        self._advance(now)
        if self._known and target == self._position():
            if self._motion:
                self._stop(now)  # there already
            return OK
        d = 1 if target == 100 else -1  # from an unknown position: open or close
        if self._known:
            d = 1 if target * 1000 > self._pos else -1
        self._go(d, target * 1000, now)
        return OK

    def poll(self, now):
        m = self._motion
        if not m:
            return False
        if self._running != m:
            # Waiting out the interlock; the other output is off (and stays off).
            if time.ticks_diff(now, self._at) >= 0:
                self._out(m).set(True)
                self._running = m
                self._at = now
            return False
        self._advance(now)
        if (m > 0 and self._pos >= self._target) or (m < 0 and self._pos <= self._target):
            self._pos = self._target
            self._known = True  # at the target, or at an end after the whole travel
            self._stop(now)
            return True
        if time.ticks_diff(now, self._push) >= 0:
            self._push = time.ticks_add(now, _PUSH_MS)
            return True
        return False


CLASSES = {"light": ColourLight, "fan": Fan, "cover": Cover}
