# Application messages inside a session (PROTOCOL.md §7): strict parsing of
# what a controller sends, compact encoding of what the device sends.
# Unknown keys, wrong types, missing fields and unknown "t" values raise
# MessageError, which the session layer answers with RESET protocol_error.
import json

from micropython import const

MAX_MESSAGE = const(3072)
MAX_ID = const(0x7FFFFFFF)

# Allowed keys per controller message type (required ones are checked below).
_KEYS = {
    "command": (
        "t",
        "id",
        "key",
        "action",
        "brightness",
        "rgb",
        "rgbw",
        "kelvin",
        "percentage",
        "value",
        "option",
        "position",
        "direction",
    ),
    "ping": ("t", "id"),
    "pong": ("t", "id"),
    "unpair": ("t", "id"),
}


class MessageError(Exception):
    pass


def _id(obj):
    v = obj.get("id")
    # JSON true/false are not ids; MicroPython's bool is not an int subclass here,
    # but check the exact type anyway.
    if type(v) is not int or not 1 <= v <= MAX_ID:
        raise MessageError("id")
    return v


def _check_strict_json(pt):
    # MicroPython's json accepts more than JSON does: leading zeros ("01"),
    # trailing commas, raw control characters in strings and bytes after the
    # value. §7 makes those protocol errors, as the controller's parser does, so
    # one scan over the bytes rejects them before json.loads sees them.
    in_str = False
    esc = False
    done = False
    depth = 0
    prev = 0  # last significant byte outside strings
    prev2 = 0
    n = len(pt)
    for i in range(n):
        c = pt[i]
        if in_str:
            if c < 0x20:
                raise MessageError("control character")
            if esc:
                esc = False
            elif c == 0x5C:  # backslash
                esc = True
            elif c == 0x22:
                in_str = False
                prev2, prev = prev, c
            continue
        if c == 0x20 or c == 0x0A or c == 0x0D or c == 0x09:
            continue
        if done:
            raise MessageError("data after the value")
        if c == 0x22:
            in_str = True
        elif c == 0x7B or c == 0x5B:  # { [
            depth += 1
        elif c == 0x7D or c == 0x5D:  # } ]
            if prev == 0x2C:
                raise MessageError("trailing comma")
            depth -= 1
            done = depth <= 0
        elif c == 0x30 and i + 1 < n and 0x30 <= pt[i + 1] <= 0x39:
            # "0" followed by a digit at the start of a number (after : [ , or a sign).
            if prev in (0x3A, 0x5B, 0x2C) or (prev == 0x2D and prev2 in (0x3A, 0x5B, 0x2C)):
                raise MessageError("leading zero")
        elif c < 0x20 or c > 0x7E:
            raise MessageError("byte outside JSON")
        prev2, prev = prev, c


def _channels(v, n):
    """A colour: a list of n integers 0..255."""
    if type(v) is not list or len(v) != n:
        return False
    for c in v:  # noqa: SIM110  (any() over a generator allocates, a loop does not)
        if type(c) is not int or not 0 <= c <= 255:
            return False
    return True


def _int_in(lo, hi):
    return lambda v: type(v) is int and lo <= v <= hi


def _colour(obj):
    return "rgb" in obj or "rgbw" in obj or "kelvin" in obj


# The command arguments (§7): name, the one action it goes with, its check.
_ARGS = (
    ("brightness", "turn_on", _int_in(0, 255)),
    ("rgb", "turn_on", lambda v: _channels(v, 3)),
    ("rgbw", "turn_on", lambda v: _channels(v, 4)),
    ("kelvin", "turn_on", _int_in(1000, 20000)),
    ("percentage", "turn_on", _int_in(0, 100)),
    # v - v != 0: infinite or NaN (inf - inf and NaN - NaN are NaN).
    ("value", "set", lambda v: type(v) in (int, float) and v - v == 0),
    ("option", "select", lambda v: type(v) is str and 1 <= len(v) <= 32),
    ("position", "set_position", _int_in(0, 100)),
    ("direction", "set_direction", lambda v: v == "forward" or v == "reverse"),
)


def parse(pt):
    """Decode a controller message; returns the dict with its fields checked."""
    if len(pt) > MAX_MESSAGE:
        raise MessageError("too long")
    _check_strict_json(pt)
    try:
        obj = json.loads(str(pt, "utf-8"))
    except (ValueError, UnicodeError):
        raise MessageError("not UTF-8 JSON")
    if type(obj) is not dict:
        raise MessageError("not an object")
    t = obj.get("t")
    allowed = _KEYS.get(t) if type(t) is str else None
    if allowed is None:
        raise MessageError("unknown type")
    for k in obj:
        if k not in allowed:
            raise MessageError("unknown field")
    _id(obj)
    if t == "command":
        key = obj.get("key")
        action = obj.get("action")
        if type(key) is not str or type(action) is not str:
            raise MessageError("key/action")
        if not 1 <= len(key) <= 32 or len(action) > 64:
            raise MessageError("key/action")
        # Each argument only with its action (§7); at most one, except that
        # turn_on may carry brightness and one colour (rgb, rgbw or kelvin).
        # The entity takes its arguments from the parsed object by name.
        n = 0
        for name, act, check in _ARGS:
            if name in obj:
                if action != act or not check(obj[name]):
                    raise MessageError(name)
                n += 1
        if n > 1 and not (n == 2 and "brightness" in obj and _colour(obj)):
            raise MessageError("more than one argument")
    return obj


def _dump(obj):
    data = json.dumps(obj).encode()
    if len(data) > MAX_MESSAGE:
        raise MessageError("message too long")
    return data


def describe(fw, model, name, entities):
    return _dump({"t": "describe", "fw": fw, "model": model, "name": name, "entities": entities})


def state(values):
    return _dump({"t": "state", "s": values})


def result(cid, error=None):
    if error is None:
        return b'{"t":"result","id":%d,"ok":true}' % cid
    return b'{"t":"result","id":%d,"ok":false,"error":"%s"}' % (cid, error.encode())


def event(key, etype):
    return b'{"t":"event","key":"%s","type":"%s"}' % (key.encode(), etype.encode())


def pong(pid):
    return b'{"t":"pong","id":%d}' % pid


class ResultCache:
    """The results of the last `size` commands, so a retried id is answered
    with the same result and never executed twice (PROTOCOL.md §7). A result
    is its error (None or one of the constant error strings): nothing is
    allocated per command, and the reply is encoded again from it."""

    def __init__(self, size=32):
        self._ids = [0] * size
        self._err = [None] * size
        self._next = 0

    def find(self, cid):
        """The slot of a remembered command id, or -1."""
        ids = self._ids
        for i in range(len(ids)):
            if ids[i] == cid:
                return i
        return -1

    def error(self, slot):
        return self._err[slot]

    def put(self, cid, error):
        i = self._next
        self._ids[i] = cid
        self._err[i] = error
        self._next = (i + 1) % len(self._ids)

    def clear(self):
        for i in range(len(self._ids)):
            self._ids[i] = 0
            self._err[i] = None
