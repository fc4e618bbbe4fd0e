# The simulated twin of hw.py for the unix port. Pin levels live in PINS
# (pin name -> value); another process reads and sets them through a
# JSON-lines control socket on 127.0.0.1 (see firmware/README.md):
#   {"op": "get"}                          -> {"ok": true, "pins": {...}, "pulses": {...}}
#   {"op": "set", "pin": "4", "value": 0}  -> {"ok": true}   (inputs, ADCs, "internal_temp",
#                                                             "ip": a string of <= 64 characters)
#   {"op": "mem"}                          -> {"ok": true, "alloc": .., "free": .., "peak": ..}
#       (after a gc.collect(); "peak" only with main.py --mem-stats)
# "pulses" counts each output's switch-ons, so a short button pulse is never
# missed by a reader that polls.
import asyncio
import json

PINS = {}
PULSES = {}
_SETTABLE = {}  # pin name -> "input" | "adc" | "temp"
_MAX_LINE = 256


def _name(pin):
    return str(pin)


class Output:
    def __init__(self, pin, inverted=False):
        self._n = _name(pin)
        self._inv = inverted
        self._on = None
        PULSES.setdefault(self._n, 0)
        self.set(False)

    def set(self, on):
        on = bool(on)
        if on and self._on is False:
            PULSES[self._n] += 1
        self._on = on
        PINS[self._n] = 1 if on != self._inv else 0


class Pwm:
    def __init__(self, pin, freq, inverted=False):
        self._n = _name(pin)
        self._inv = inverted
        self.set(0)

    def set(self, level):
        self.duty(level * 257)

    def duty(self, d):
        PINS[self._n] = 65535 - d if self._inv else d


class Adc:
    def __init__(self, pin):
        self._n = _name(pin)
        PINS.setdefault(self._n, 0)
        _SETTABLE[self._n] = "adc"

    def read(self):
        return PINS[self._n]


class InternalTemp:
    def __init__(self):
        PINS.setdefault("internal_temp", 25.0)
        _SETTABLE["internal_temp"] = "temp"

    def read(self):
        return PINS["internal_temp"]


class Input:
    def __init__(self, pin):
        self._n = _name(pin)
        PINS.setdefault(self._n, 1)  # pulled up
        _SETTABLE[self._n] = "input"

    def value(self):
        return PINS[self._n]


def ip_address():
    # The simulated device's address: settable, to stand for a DHCP change.
    PINS.setdefault("ip", "127.0.0.1")
    _SETTABLE["ip"] = "text"
    return PINS["ip"]


def restart_reason():
    return "power_on"


def power_on_boot():
    # A process start on the unix port is the simulated device's power-on.
    return True


async def network_up(wifi, log):
    return


def _handle(req):
    op = req.get("op")
    if op == "get":
        return {"ok": True, "pins": PINS, "pulses": PULSES}
    if op == "set":
        n = req.get("pin")
        n = _name(n) if type(n) in (int, str) else None
        kind = _SETTABLE.get(n)
        v = req.get("value")
        if kind is None:
            return {"ok": False, "error": "not a settable pin"}
        if kind == "input" and v not in (0, 1):
            return {"ok": False, "error": "an input is 0 or 1"}
        if kind == "adc" and (type(v) is not int or not 0 <= v <= 65535):
            return {"ok": False, "error": "an ADC reads 0..65535"}
        if kind == "temp" and type(v) not in (int, float):
            return {"ok": False, "error": "a temperature is a number"}
        if kind == "text" and (type(v) is not str or len(v) > 64):
            return {"ok": False, "error": "a text is a string of at most 64 characters"}
        PINS[n] = v
        return {"ok": True}
    if op == "mem":
        import gc

        from homeseal import memstat

        gc.collect()
        return {"ok": True, "alloc": gc.mem_alloc(), "free": gc.mem_free(), "peak": memstat.peak}
    return {"ok": False, "error": "unknown op"}


async def _client(reader, writer):
    buf = b""
    try:
        while True:
            chunk = await reader.read(_MAX_LINE)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                try:
                    req = json.loads(line)
                    resp = (
                        _handle(req)
                        if type(req) is dict
                        else {"ok": False, "error": "not an object"}
                    )
                except ValueError:
                    resp = {"ok": False, "error": "bad json"}
                writer.write(json.dumps(resp).encode() + b"\n")
                await writer.drain()
            if len(buf) > _MAX_LINE:
                break
    except OSError:
        pass
    try:
        writer.s.close()
    except Exception:
        pass


def start_control(host, port):
    """Start the control socket server (a task); returns the start coroutine."""
    return asyncio.start_server(_client, host, port)
