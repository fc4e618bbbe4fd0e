# config.json: loading and validation. Every problem raises ConfigError with
# the dotted name of the field at fault, so the device can stop with one
# clear line such as `config error: relay.url: must start with ws:// or wss://`.
# Only needed at boot: main.py unloads this module once the config is read.
import binascii
import json

from homeseal.errors import ConfigError  # also config.ConfigError

KINDS = ("switch", "light", "sensor", "binary_sensor", "button")
_TOP = (
    "name",
    "model",
    "wifi",
    "relay",
    "pairing_button",
    "state_interval",
    "save_delay",
    "entities",
)
_COMMON = ("key", "kind", "name", "category", "disabled_by_default")
# HA's entity categories; a sensor reports and never configures.
_CATEGORIES = ("config", "diagnostic")
_SENSORS = ("sensor", "binary_sensor")
_RESTORE = ("off", "on", "last")
_EXTRA = {
    "switch": ("pin", "inverted", "restore"),
    "light": ("pin", "inverted", "freq", "restore"),
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
    if type(v) not in (int, float):
        raise ConfigError(field + "." + k, "must be a number")
    return v


def _bool(d, k, field, default=False):
    v = d.get(k, default)
    if type(v) is not bool:
        raise ConfigError(field + "." + k, "must be true or false")
    return v


def _pin(d, field):
    v = d.get("pin")
    f = field + ".pin"
    if v is None:
        raise ConfigError(f, "is required")
    if type(v) is int:
        if not 0 <= v <= 255:
            raise ConfigError(f, "must be a GPIO number from 0 to 255 or a pin name")
    elif type(v) is not str or not 1 <= len(v) <= 16:
        raise ConfigError(f, "must be a GPIO number from 0 to 255 or a pin name")
    return v


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
    cat = e.get("category")
    allowed = ("diagnostic",) if kind in _SENSORS else _CATEGORIES
    if cat is not None and cat not in allowed:
        raise ConfigError(f + ".category", "must be " + " or ".join(allowed) + " for a " + kind)
    out["category"] = cat
    out["disabled_by_default"] = _bool(e, "disabled_by_default", f)
    if kind == "sensor":
        src = e.get("source", "adc")
        if src not in ("adc", "internal_temp"):
            raise ConfigError(f + ".source", "must be adc or internal_temp")
        out["source"] = src
        out["pin"] = _pin(e, f) if src == "adc" else None
        out["scale"] = _num(e, "scale", f, 1)
        out["offset"] = _num(e, "offset", f, 0)
        out["precision"] = _int(e, "precision", f, 1, 0, 6)
        out["interval"] = _int(e, "interval", f, 10, 1, 3600)
        for k in ("device_class", "unit", "state_class"):
            out[k] = _opt_str(e, k, f)
    else:
        out["pin"] = _pin(e, f)
        out["inverted"] = _bool(e, "inverted", f)
        if kind in ("switch", "light"):
            # What the output does after a reboot: off (the default), on, or its
            # last state (entities.py saves it a few seconds after a change).
            out["restore"] = e.get("restore", "off")
            if out["restore"] not in _RESTORE:
                raise ConfigError(f + ".restore", "must be " + ", ".join(_RESTORE))
        if kind == "light":
            out["freq"] = _int(e, "freq", f, 1000, 1, 40000000)
        elif kind == "binary_sensor":
            out["debounce_ms"] = _int(e, "debounce_ms", f, 50, 0, 10000)
            out["device_class"] = _opt_str(e, "device_class", f)
        elif kind == "button":
            out["pulse_ms"] = _int(e, "pulse_ms", f, 200, 1, 10000)
    if out["pin"] is not None:
        if out["pin"] in seen_pins:
            raise ConfigError(f + ".pin", "pin %s is already used" % out["pin"])
        seen_pins.append(out["pin"])
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
