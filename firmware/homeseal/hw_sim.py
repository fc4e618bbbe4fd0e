# The simulated twin of hw.py for the unix port. Pin levels live in PINS
# (pin name -> value); another process reads and sets them through a
# JSON-lines control socket on 127.0.0.1 (see firmware/README.md):
#   {"op": "get"}                          -> {"ok": true, "pins": {...}, "pulses": {...}}
#   {"op": "set", "pin": "4", "value": 0}  -> {"ok": true}   (inputs, ADCs, "internal_temp",
#                                                             "ip": a string of <= 64 characters,
#                                                             "rssi": dBm -127..0, or null)
#   {"op": "mem"}                          -> {"ok": true, "alloc": .., "free": .., "peak": ..}
#       (after a gc.collect(); "peak" only with main.py --mem-stats)
#   {"op": "hang", "ms": 5000}             -> blocks the event loop that long (the watchdog's case)
#   {"op": "crash"}                        -> a task raises an unexpected exception
# "pulses" counts each output's switch-ons, so a short button pulse is never
# missed by a reader that polls.
import asyncio
import json
import time

PINS = {}
PULSES = {}
_SETTABLE = {}  # pin name -> "input" | "adc" | "temp" | "text" | "rssi"
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


def wifi_signal():
    # The simulated Wi-Fi signal in dBm: settable, null for no link.
    PINS.setdefault("rssi", -60)
    _SETTABLE["rssi"] = "rssi"
    return PINS["rssi"]


# What the simulated device's supervisor (scripts/simdevice) reads from a reset:
# the process's exit status, which stands for the board's reset cause.
EXIT_WATCHDOG = 3
EXIT_RESTART = 4


def restart_reason():
    # The supervisor says why it started this process again; a first start is a
    # power-on.
    import os

    return os.getenv("HOMESEAL_RESTART_REASON") or "power_on"


def _exit(status):
    # The whole process at once, from any thread, as a reset would (sys.exit only
    # ends the thread it is raised in).
    import ffi

    ffi.open(None).func("v", "_exit", "i")(status)


class Watchdog:
    """The board's watchdog, simulated: a thread that ends the process with
    EXIT_WATCHDOG unless fed within `timeout_ms`. Like the board's, it sees a
    main loop that hangs (a call that never returns, a busy loop), not only one
    that crashed."""

    def __init__(self, timeout_ms):
        import _thread

        self._timeout = timeout_ms
        self._fed = time.ticks_ms()
        _thread.start_new_thread(self._watch, ())

    def feed(self):
        self._fed = time.ticks_ms()

    def _watch(self):
        while True:
            time.sleep_ms(100)
            starved = time.ticks_diff(time.ticks_ms(), self._fed)
            if starved > self._timeout:
                print("homeseal: watchdog: not fed for %d ms: reset" % starved)
                _exit(EXIT_WATCHDOG)


def restart(reason):
    """Restart now (after an unexpected error): the supervisor starts the firmware
    again."""
    print("homeseal: restarting (%s)" % reason)
    _exit(EXIT_RESTART)


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
        if kind == "rssi" and v is not None and (type(v) is not int or not -127 <= v <= 0):
            return {"ok": False, "error": "a signal is an integer from -127 to 0 dBm, or null"}
        PINS[n] = v
        return {"ok": True}
    if op == "hang":
        # A main loop that stops: blocks the event loop (the watchdog's case).
        ms = req.get("ms")
        if type(ms) is not int or not 0 < ms <= 60000:
            return {"ok": False, "error": "ms is 1..60000"}
        time.sleep_ms(ms)
        return {"ok": True}
    if op == "crash":
        # An unexpected exception in a task of the device's event loop.
        asyncio.create_task(_crash())
        return {"ok": True}
    if op == "mem":
        import gc

        from homeseal import memstat

        gc.collect()
        return {"ok": True, "alloc": gc.mem_alloc(), "free": gc.mem_free(), "peak": memstat.peak}
    return {"ok": False, "error": "unknown op"}


async def _crash():
    raise RuntimeError("simulated crash (control socket)")


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
