# config.json: loading and validation. Every problem raises ConfigError with
# the dotted name of the field at fault, so the device can stop with one
# clear line such as `config error: relay.url: must start with ws:// or wss://`.
# Only needed at boot: main.py unloads this module once the config is read.
import binascii
import json

from homeseal.errors import ConfigError  # also config.ConfigError

KINDS = (
    "switch",
    "light",
    "fan",
    "cover",
    "sensor",
    "binary_sensor",
    "button",
    "number",
    "select",
    "text_sensor",
    "event",
)
_TOP = (
    "name",
    "model",
    "wifi",
    "relay",
    "pairing_button",
    "state_interval",
    "save_delay",
    "watchdog_ms",
    "entities",
)
_COMMON = ("key", "kind", "name", "category", "disabled_by_default")
# HA's entity categories; a sensor reports and never configures.
_CATEGORIES = ("config", "diagnostic")
_SENSORS = ("sensor", "binary_sensor", "text_sensor", "event")
_RESTORE = ("off", "on", "last")
_EVENT_TYPES = ("single", "double", "long")
_COLOR_MODES = ("brightness", "rgb", "rgbw", "color_temp")
# A colour light's pins: how many, and how the error names the light.
_LIGHT_PINS = {"rgb": (3, "an rgb"), "rgbw": (4, "an rgbw"), "color_temp": (2, "a color_temp")}
_SENSOR_SOURCES = ("adc", "internal_temp", "uptime", "free_heap", "reconnects", "wifi_signal")
# The health sources' defaults, where the config names none: device_class, unit,
# state_class, disabled_by_default (and category diagnostic for all of them).
_HEALTH = {
    "uptime": ("duration", "s", "total_increasing", True),
    "free_heap": ("data_size", "B", "measurement", True),
    "reconnects": (None, None, "total_increasing", False),
    "wifi_signal": ("signal_strength", "dBm", "measurement", True),
}
_EXTRA = {
    "switch": ("pin", "inverted", "restore"),
    "light": (
        "color_mode",
        "pin",
        "pins",
        "min_kelvin",
        "max_kelvin",
        "inverted",
        "freq",
        "restore",
    ),
    "fan": ("pin", "direction_pin", "inverted", "freq", "restore"),
    "cover": (
        "open_pin",
        "close_pin",
        "open_time",
        "close_time",
        "interlock_ms",
        "inverted",
        "device_class",
        "restore",
    ),
    "sensor": (
        "source",
        "pin",
        "scale",
        "offset",
        "precision",
        "interval",
        "device_class",
        "unit",
        "state_class",
    ),
    "binary_sensor": ("pin", "inverted", "debounce_ms", "device_class"),
    "button": ("pin", "inverted", "pulse_ms"),
    "number": (
        "output",
        "pin",
        "inverted",
        "freq",
        "pulse_us",
        "min",
        "max",
        "step",
        "initial",
        "unit",
        "mode",
        "device_class",
        "restore",
    ),
    "select": ("options", "initial", "pins", "inverted", "restore"),
    "text_sensor": ("source", "interval"),
    "event": ("pin", "inverted", "debounce_ms", "long_ms", "double_ms", "types"),
}
MAX_ENTITIES = 24


def _obj(v, field):
    if type(v) is not dict:
        raise ConfigError(field, "must be an object")
    return v


def _only(d, allowed, field):
    for k in d:
        if k not in allowed:
            raise ConfigError(field + "." + k if field else k, "unknown field")


def _str(d, k, field, default=None, lo=1, hi=64):
    v = d.get(k, default)
    f = field + "." + k if field else k
    if v is None:
        raise ConfigError(f, "is required")
    if type(v) is not str or not lo <= len(v) <= hi:
        raise ConfigError(f, "must be a string of %d to %d characters" % (lo, hi))
    return v


def _opt_str(d, k, field, hi=32):
    if k not in d:
        return None
    return _str(d, k, field, lo=1, hi=hi)


def _int(d, k, field, default, lo, hi):
    v = d.get(k, default)
    f = field + "." + k if field else k
    if v is None:
        raise ConfigError(f, "is required")
    if type(v) is not int or not lo <= v <= hi:
        raise ConfigError(f, "must be an integer from %d to %d" % (lo, hi))
    return v


def _num(d, k, field, default):
    v = d.get(k, default)
    # v - v != 0: infinite or NaN (MicroPython's json reads 1e999 as inf).
    if type(v) not in (int, float) or v - v != 0:
        raise ConfigError(field + "." + k, "must be a number")
    return v


def _bool(d, k, field, default=False):
    v = d.get(k, default)
    if type(v) is not bool:
        raise ConfigError(field + "." + k, "must be true or false")
    return v


def _gpio(v, f):
    if v is None:
        raise ConfigError(f, "is required")
    if type(v) is int:
        if not 0 <= v <= 255:
            raise ConfigError(f, "must be a GPIO number from 0 to 255 or a pin name")
    elif type(v) is not str or not 1 <= len(v) <= 16:
        raise ConfigError(f, "must be a GPIO number from 0 to 255 or a pin name")
    return v


def _pin(d, field, k="pin"):
    return _gpio(d.get(k), field + "." + k)


def _claim(p, f, seen_pins):
    """Take pin p for the field f: one use per pin in the whole config."""
    if p in seen_pins:
        raise ConfigError(f, "pin %s is already used" % p)
    seen_pins.append(p)


def _choice(d, k, field, choices, default):
    v = d.get(k, default)
    if v not in choices:
        raise ConfigError(field + "." + k, "must be " + ", ".join(choices))
    return v


def _strings(d, k, field, hi, choices=None):
    """A list of 1 to 16 distinct strings of 1 to `hi` characters (of `choices`)."""
    v = d.get(k)
    f = field + "." + k
    if type(v) is not list or not 1 <= len(v) <= 16:
        raise ConfigError(f, "must be a list of 1 to 16 strings")
    for i, s in enumerate(v):
        if type(s) is not str or not 1 <= len(s) <= hi:
            raise ConfigError("%s[%d]" % (f, i), "must be a string of 1 to %d characters" % hi)
        if choices is not None and s not in choices:
            raise ConfigError("%s[%d]" % (f, i), "must be one of " + ", ".join(choices))
        if s in v[:i]:
            raise ConfigError("%s[%d]" % (f, i), "duplicate " + s)
    return v


def _number(e, f, out):
    out["min"] = _num(e, "min", f, 0)
    out["max"] = _num(e, "max", f, 100)
    if out["max"] <= out["min"]:
        raise ConfigError(f + ".max", "must be greater than min")
    out["step"] = _num(e, "step", f, 1)
    if out["step"] <= 0:
        raise ConfigError(f + ".step", "must be greater than 0")
    out["initial"] = _num(e, "initial", f, out["min"])
    if not out["min"] <= out["initial"] <= out["max"]:
        raise ConfigError(f + ".initial", "must be from min to max")
    out["unit"] = _opt_str(e, "unit", f)
    out["device_class"] = _opt_str(e, "device_class", f)
    out["mode"] = None
    if "mode" in e:
        out["mode"] = _choice(e, "mode", f, ("auto", "box", "slider"), None)
    out["output"] = _choice(e, "output", f, ("none", "pwm", "servo"), "none")
    if out["output"] != "none":
        out["pin"] = _pin(e, f)
    elif "pin" in e:
        raise ConfigError(f + ".pin", "only with output pwm or servo")
    else:
        out["pin"] = None
    out["inverted"] = _bool(e, "inverted", f)
    out["freq"] = _int(e, "freq", f, 1000, 1, 40000000)
    p = e.get("pulse_us", [1000, 2000])
    if type(p) is not list or len(p) != 2 or not all(type(x) is int for x in p):
        raise ConfigError(f + ".pulse_us", "must be [shortest, longest] in microseconds")
    if not 0 < p[0] < p[1] <= 20000:
        raise ConfigError(f + ".pulse_us", "must be [shortest, longest] within 1 to 20000")
    out["pulse_us"] = p


def _select(e, f, out, seen_pins):
    out["options"] = _strings(e, "options", f, 32)
    out["initial"] = e.get("initial", out["options"][0])
    if out["initial"] not in out["options"]:
        raise ConfigError(f + ".initial", "must be one of the options")
    out["inverted"] = _bool(e, "inverted", f)
    out["pins"] = None
    if "pins" in e:
        pins = e["pins"]
        if type(pins) is not list or len(pins) != len(out["options"]):
            raise ConfigError(f + ".pins", "must list one pin per option")
        for i, p in enumerate(pins):
            _claim(_gpio(p, "%s.pins[%d]" % (f, i)), "%s.pins[%d]" % (f, i), seen_pins)
        out["pins"] = pins


def _light(e, f, out, seen_pins):
    mode = out["color_mode"] = _choice(e, "color_mode", f, _COLOR_MODES, "brightness")
    out["inverted"] = _bool(e, "inverted", f)
    out["freq"] = _int(e, "freq", f, 1000, 1, 40000000)
    out["pins"] = out["min_kelvin"] = out["max_kelvin"] = None
    if mode == "brightness":
        for k in ("pins", "min_kelvin", "max_kelvin"):
            if k in e:
                raise ConfigError(f + "." + k, "only with color_mode rgb, rgbw or color_temp")
        out["pin"] = _pin(e, f)
        return
    out["pin"] = None
    n, light = _LIGHT_PINS[mode]
    if "pin" in e:
        raise ConfigError(f + ".pin", "%s light has pins, not pin" % light)
    pins = e.get("pins")
    if type(pins) is not list or len(pins) != n:
        what = ": [warm, cold]" if mode == "color_temp" else " (r, g, b[, w])"
        raise ConfigError(f + ".pins", "%s light needs %d pins%s" % (light, n, what))
    for i, p in enumerate(pins):
        _claim(_gpio(p, "%s.pins[%d]" % (f, i)), "%s.pins[%d]" % (f, i), seen_pins)
    out["pins"] = pins
    if mode != "color_temp":
        for k in ("min_kelvin", "max_kelvin"):
            if k in e:
                raise ConfigError(f + "." + k, "only with color_mode color_temp")
        return
    out["min_kelvin"] = _int(e, "min_kelvin", f, None, 1000, 20000)
    out["max_kelvin"] = _int(e, "max_kelvin", f, None, 1000, 20000)
    if out["max_kelvin"] <= out["min_kelvin"]:
        raise ConfigError(f + ".max_kelvin", "must be greater than min_kelvin")


def _travel(e, k, f):
    if k not in e:
        raise ConfigError(f + "." + k, "is required")
    v = _num(e, k, f, None)
    if not 0 < v <= 600:
        raise ConfigError(f + "." + k, "must be more than 0 and at most 600 seconds")
    return v


def _cover(e, f, out):
    out["pin"] = None
    out["open_pin"] = _pin(e, f, "open_pin")
    out["close_pin"] = _pin(e, f, "close_pin")
    out["open_time"] = _travel(e, "open_time", f)
    out["close_time"] = _travel(e, "close_time", f)
    out["interlock_ms"] = _int(e, "interlock_ms", f, 250, 0, 10000)
    out["inverted"] = _bool(e, "inverted", f)
    out["device_class"] = _opt_str(e, "device_class", f)


def _sensor(e, f, out, health):
    src = out["source"] = e.get("source", "adc")
    if src not in _SENSOR_SOURCES:
        raise ConfigError(f + ".source", "must be " + ", ".join(_SENSOR_SOURCES))
    out["interval"] = _int(e, "interval", f, 10, 1, 3600)
    if health is None:
        out["pin"] = _pin(e, f) if src == "adc" else None
        out["scale"] = _num(e, "scale", f, 1)
        out["offset"] = _num(e, "offset", f, 0)
        out["precision"] = _int(e, "precision", f, 1, 0, 6)
    else:
        # An integer as it is read: no pin, no scale, offset or precision.
        if "pin" in e:
            raise ConfigError(f + ".pin", "only with source adc")
        for k in ("scale", "offset", "precision"):
            if k in e:
                raise ConfigError(f + "." + k, "only with source adc or internal_temp")
        out["pin"] = out["scale"] = None
        out["offset"] = 0
        out["precision"] = 0
    for i, k in enumerate(("device_class", "unit", "state_class")):
        out[k] = _opt_str(e, k, f)
        if out[k] is None and health is not None:
            out[k] = health[i]


def _event(e, f, out):
    out["debounce_ms"] = _int(e, "debounce_ms", f, 30, 0, 1000)
    out["long_ms"] = _int(e, "long_ms", f, 800, 100, 10000)
    out["double_ms"] = _int(e, "double_ms", f, 300, 0, 2000)
    if "types" in e:
        out["types"] = _strings(e, "types", f, 6, _EVENT_TYPES)
        if "double" in out["types"] and not out["double_ms"]:
            raise ConfigError(f + ".types", "double needs double_ms greater than 0")
    else:
        out["types"] = ["single", "double", "long"] if out["double_ms"] else ["single", "long"]


def _key(v, field):
    if type(v) is not str or not 1 <= len(v) <= 32:
        raise ConfigError(field, "must be 1 to 32 characters of a-z, 0-9 and _")
    for c in v:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_"):
            raise ConfigError(field, "must be 1 to 32 characters of a-z, 0-9 and _")
    return v


def parse_url(url, field="relay.url"):
    """(tls, host, port, path) of a ws:// or wss:// URL."""
    if url.startswith("ws://"):
        tls, rest, port = False, url[5:], 80
    elif url.startswith("wss://"):
        tls, rest, port = True, url[6:], 443
    else:
        raise ConfigError(field, "must start with ws:// or wss://")
    i = rest.find("/")
    hostport, path = (rest, "") if i < 0 else (rest[:i], rest[i:])
    if path in ("", "/"):
        path = "/ws/device"
    if hostport.startswith("["):
        j = hostport.find("]")
        if j < 0:
            raise ConfigError(field, "bad IPv6 address")
        host, tail = hostport[1:j], hostport[j + 1 :]
    else:
        j = hostport.rfind(":")
        host, tail = (hostport, "") if j < 0 else (hostport[:j], hostport[j:])
    if tail:
        if not tail.startswith(":") or not tail[1:].isdigit():
            raise ConfigError(field, "bad port")
        port = int(tail[1:])
        if not 0 < port < 65536:
            raise ConfigError(field, "bad port")
    if not host or "@" in host or " " in host:
        raise ConfigError(field, "bad host")
    if "?" in path or "#" in path or " " in path:
        raise ConfigError(field, "bad path")
    return tls, host, port, path


def _tls_available():
    for name in ("tls", "ssl"):
        try:
            __import__(name)
            return True
        except ImportError:
            pass
    return False


def _relay(d):
    d = _obj(d, "relay")
    _only(d, ("url", "ca", "relay_key"), "relay")
    url = _str(d, "url", "relay", hi=256)
    tls, host, port, path = parse_url(url)
    out = {
        "url": url,
        "tls": tls,
        "host": host,
        "port": port,
        "path": path,
        "ca": None,
        "relay_key": None,
    }
    if tls and not _tls_available():
        raise ConfigError(
            "relay.url", "wss:// needs TLS, and this MicroPython build has no tls/ssl module"
        )
    if "ca" in d:
        ca = _str(d, "ca", "relay", hi=128)
        try:
            with open(ca, "rb") as f:
                f.read(1)
        except OSError:
            raise ConfigError("relay.ca", "cannot read the CA file " + ca)
        out["ca"] = ca
    elif tls:
        raise ConfigError(
            "relay.ca", "is required for wss:// (the relay's certificate is always verified)"
        )
    if "relay_key" in d:
        k = d["relay_key"]
        try:
            if type(k) is not str or len(k) != 64:
                raise ValueError
            out["relay_key"] = binascii.unhexlify(k)
        except ValueError:
            raise ConfigError("relay.relay_key", "must be 64 hexadecimal characters")
    return out


def _entity(e, i, seen_keys, seen_pins):
    f = "entities[%d]" % i
    e = _obj(e, f)
    kind = e.get("kind")
    if kind not in KINDS:
        raise ConfigError(f + ".kind", "must be one of " + ", ".join(KINDS))
    _only(e, _COMMON + _EXTRA[kind], f)
    key = _key(e.get("key"), f + ".key")
    if key in seen_keys:
        raise ConfigError(f + ".key", "duplicate key " + key)
    seen_keys.append(key)
    out = {"key": key, "kind": kind, "name": _str(e, "name", f)}
    src = e.get("source")
    health = _HEALTH.get(src) if kind == "sensor" and type(src) is str else None
    # The device's own health is diagnostic unless the config says otherwise
    # (null: a primary entity), and the busy figures start disabled.
    diag = health is not None or (kind == "text_sensor" and src == "restart_reason")
    cat = e.get("category", "diagnostic" if diag else None)
    allowed = ("diagnostic",) if kind in _SENSORS else _CATEGORIES
    if cat is not None and cat not in allowed:
        a = " for an " if kind[0] in "aeiou" else " for a "
        raise ConfigError(f + ".category", "must be " + " or ".join(allowed) + a + kind)
    out["category"] = cat
    out["disabled_by_default"] = _bool(
        e, "disabled_by_default", f, health is not None and health[3]
    )
    if kind in ("switch", "light", "fan", "number", "select", "cover"):
        # What the output does after a reboot: off (the default), on, or its
        # last state (entities.py saves it a few seconds after a change); for a
        # number or a select off means its initial value, and on is not one; a
        # cover's last is its position (the default), off an unknown one.
        choices = _RESTORE if kind in ("switch", "light", "fan") else ("off", "last")
        out["restore"] = _choice(e, "restore", f, choices, "last" if kind == "cover" else "off")
    if kind == "number":
        _number(e, f, out)
    elif kind == "select":
        _select(e, f, out, seen_pins)
        out["pin"] = None
    elif kind == "light":
        _light(e, f, out, seen_pins)
    elif kind == "cover":
        _cover(e, f, out)
    elif kind == "text_sensor":
        out["source"] = _choice(e, "source", f, ("ip", "restart_reason"), "ip")
        out["interval"] = _int(e, "interval", f, 10, 1, 3600)
        out["pin"] = None
    elif kind == "sensor":
        _sensor(e, f, out, health)
    else:
        out["pin"] = _pin(e, f)
        out["inverted"] = _bool(e, "inverted", f)
        if kind == "event":
            _event(e, f, out)
        elif kind == "fan":
            out["direction_pin"] = _pin(e, f, "direction_pin") if "direction_pin" in e else None
            out["freq"] = _int(e, "freq", f, 1000, 1, 40000000)
        elif kind == "binary_sensor":
            out["debounce_ms"] = _int(e, "debounce_ms", f, 50, 0, 10000)
            out["device_class"] = _opt_str(e, "device_class", f)
        elif kind == "button":
            out["pulse_ms"] = _int(e, "pulse_ms", f, 200, 1, 10000)
    if out["pin"] is not None:
        _claim(out["pin"], f + ".pin", seen_pins)
    for k in ("direction_pin", "open_pin", "close_pin"):
        if out.get(k) is not None:
            _claim(out[k], f + "." + k, seen_pins)
    return out


def validate(d):
    """A normalised copy of the config, with every default filled in."""
    d = _obj(d, "config")
    _only(d, _TOP, "")
    cfg = {
        "name": _str(d, "name", "", default="HomeSeal device"),
        "model": _str(d, "model", "", default="homeseal-mpy"),
        "state_interval": _int(d, "state_interval", "", 60, 5, 3600),
        # Seconds an output's new state waits before it is written (restore: last):
        # a burst of changes costs one flash write, a cut within it loses that change.
        "save_delay": _int(d, "save_delay", "", 10, 1, 3600),
        # The watchdog restarts a device whose main loop stalls this long; 8388 ms is
        # the longest a Pico W's (RP2040) watchdog takes.
        "watchdog_ms": _int(d, "watchdog_ms", "", 8000, 1000, 8388),
        "wifi": None,
        "pairing_button": None,
    }
    if "relay" not in d:
        raise ConfigError("relay", "is required")
    cfg["relay"] = _relay(d["relay"])
    if "wifi" in d:
        w = _obj(d["wifi"], "wifi")
        _only(w, ("ssid", "password"), "wifi")
        cfg["wifi"] = {
            "ssid": _str(w, "ssid", "wifi", hi=32),
            "password": _str(w, "password", "wifi", default="", lo=0),
        }
    pins = []
    if "pairing_button" in d:
        b = _obj(d["pairing_button"], "pairing_button")
        _only(b, ("pin", "inverted", "long_press_ms", "factory_reset_ms"), "pairing_button")
        pb = {
            "pin": _pin(b, "pairing_button"),
            "inverted": _bool(b, "inverted", "pairing_button"),
            "long_press_ms": _int(b, "long_press_ms", "pairing_button", 5000, 100, 60000),
            "factory_reset_ms": _int(b, "factory_reset_ms", "pairing_button", 15000, 200, 120000),
        }
        if pb["factory_reset_ms"] <= pb["long_press_ms"]:
            raise ConfigError(
                "pairing_button.factory_reset_ms", "must be longer than long_press_ms"
            )
        pins.append(pb["pin"])
        cfg["pairing_button"] = pb
    ents = d.get("entities", [])
    if type(ents) is not list:
        raise ConfigError("entities", "must be a list")
    if len(ents) > MAX_ENTITIES:
        raise ConfigError("entities", "at most %d entities" % MAX_ENTITIES)
    keys = []
    cfg["entities"] = [_entity(e, i, keys, pins) for i, e in enumerate(ents)]
    return cfg


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError(path, "cannot read the file")
    try:
        d = json.loads(text)
    except ValueError:
        raise ConfigError(path, "is not valid JSON")
    return validate(d)
