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
    "command": ("t", "id", "key", "action", "brightness"),
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


def parse(pt):
    """Decode a controller message; returns the dict with its fields checked."""
    if len(pt) > MAX_MESSAGE:
        raise MessageError("too long")
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
        if "brightness" in obj:
            b = obj["brightness"]
            if action != "turn_on" or type(b) is not int or not 0 <= b <= 255:
                raise MessageError("brightness")
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
