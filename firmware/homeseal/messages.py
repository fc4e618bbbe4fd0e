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
        bright = "brightness" in obj
        if bright:
            b = obj["brightness"]
            if action != "turn_on" or type(b) is not int or not 0 <= b <= 255:
                raise MessageError("brightness")
        colours = 0
        if "rgb" in obj:
            if action != "turn_on" or not _channels(obj["rgb"], 3):
                raise MessageError("rgb")
            colours += 1
        if "rgbw" in obj:
            if action != "turn_on" or not _channels(obj["rgbw"], 4):
                raise MessageError("rgbw")
            colours += 1
        if "kelvin" in obj:
            k = obj["kelvin"]
            if action != "turn_on" or type(k) is not int or not 1000 <= k <= 20000:
                raise MessageError("kelvin")
            colours += 1
        others = 0
        if "percentage" in obj:
            p = obj["percentage"]
            if action != "turn_on" or type(p) is not int or not 0 <= p <= 100:
                raise MessageError("percentage")
            others += 1
        if "value" in obj:
            v = obj["value"]
            # v - v != 0: infinite or NaN (inf - inf and NaN - NaN are NaN).
            if action != "set" or type(v) not in (int, float) or v - v != 0:
                raise MessageError("value")
            others += 1
        if "option" in obj:
            o = obj["option"]
            if action != "select" or type(o) is not str or not 1 <= len(o) <= 32:
                raise MessageError("option")
            others += 1
        if "position" in obj:
            p = obj["position"]
            if action != "set_position" or type(p) is not int or not 0 <= p <= 100:
                raise MessageError("position")
            others += 1
        if "direction" in obj:
            d = obj["direction"]
            if action != "set_direction" or (d != "forward" and d != "reverse"):
                raise MessageError("direction")
            others += 1
        if colours + others > 1 or (bright and others):
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
