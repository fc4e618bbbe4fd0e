# ruff: noqa: UP031, PLW0603, PLC0415, PT018  (MicroPython code: no f-strings of bytes, module state)
# mypy: ignore-errors
"""The firmware parsers the fuzz suite drives, written once for both interpreters.

`classify(target, data)` runs one parser on one input and returns a short, comparable
verdict: "ok:<summary>" or "err:<exception class name>". Anything else escaping a parser
is reported as "CRASH:<class>:<message>". This file is valid MicroPython and CPython: the
replay test runs it on the unix port with the same inputs the CPython run used.
"""

import json

from homeseal import envelope, messages, pairing, relay, session, store, ws

DEVICE_PRIV = bytes([5] * 32)
CONTROLLER_PUB = None  # set by setup()
DEVICE_PUB = None
IDS = (bytes(10), bytes(10))
STATE_DIR = None  # a directory holding provisioning.json, for the pairing target

EXPECTED = {
    "envelope": ("EnvelopeError",),
    "messages": ("MessageError",),
    "handshake1": ("ValueError",),
    "auth_challenge": ("AuthError",),
    "websocket": ("WSError", "WSClosed"),
    "pairing": (),
}


def setup(device_pub, controller_pub, device_id, controller_id, state_dir=None):
    global DEVICE_PUB, CONTROLLER_PUB, IDS, STATE_DIR
    DEVICE_PUB = device_pub
    CONTROLLER_PUB = controller_pub
    IDS = (device_id, controller_id)
    STATE_DIR = state_dir


def _envelope(data):
    ftype, peer, payload = envelope.parse(data)
    return "%d:%s:%d" % (ftype, bytes(peer).hex(), len(payload))


def _messages(data):
    obj = messages.parse(data)
    return json.dumps(sorted(obj.keys()))


def _handshake1(data):
    s = (DEVICE_PRIV, DEVICE_PUB)
    _, msg2 = session.respond(s, CONTROLLER_PUB, IDS[0], IDS[1], data)
    return "answered:%d" % len(msg2)


def _auth_challenge(data):
    resp, k_ctl = relay.auth_response(DEVICE_PRIV, DEVICE_PUB, data)
    return "mac:%d:%s" % (len(resp), bytes(k_ctl).hex())


class _Reader:
    def __init__(self, data):
        self.data = data
        self.off = 0

    async def readinto(self, mv):
        n = min(len(mv), len(self.data) - self.off, 37)  # short reads, to split headers
        mv[0:n] = self.data[self.off : self.off + n]
        self.off += n
        return n


class _Writer:
    def __init__(self):
        self.out = bytearray()

    def write(self, data):
        self.out += data

    async def drain(self):
        pass


async def _ws_messages(data):
    # The constructor takes preallocated Buffers (older firmware: the size itself).
    bufs = ws.Buffers(envelope.MAX_FRAME) if hasattr(ws, "Buffers") else envelope.MAX_FRAME
    sock = ws.WebSocket(_Reader(data), _Writer(), bufs)
    got = []
    try:
        while True:
            op, msg = await sock.recv()
            assert op in (ws.OP_TEXT, ws.OP_BINARY) and len(msg) <= envelope.MAX_FRAME
            got.append("%d/%d" % (op, len(msg)))
    except ws.WSError as e:
        # The stream always ends (EOF at the latest): the verdict is the messages
        # read and the close code the client chose.
        return "%s:%s:%d" % (type(e).__name__, ",".join(got), e.code)


def _websocket(data):
    import asyncio

    # A private loop: asyncio.run() would clear the CPython test runner's current loop.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_ws_messages(data))
    finally:
        loop.close()


def split_messages(data):
    """Pairing payloads packed as `len (1) ‖ payload`, repeated (the first is PAIR_START)."""
    out = []
    i = 0
    while i < len(data):
        n = data[i]
        out.append(data[i + 1 : i + 1 + n])
        i += 1 + n
    return out


def _pairing(data):
    st = store.Store(STATE_DIR)
    st.remove(store.ATTEMPTS)
    paired = []
    p = pairing.Pairing(st, IDS[0], DEVICE_PUB, 0, lambda *a: paired.append(a), lambda m: None)
    p.open_window()
    answers = []
    for i, payload in enumerate(split_messages(data)):
        ftype = envelope.PAIR_START if i == 0 else envelope.PAIR
        for frame_type, to, body in p.handle(ftype, IDS[1], memoryview(payload), False):
            assert frame_type == envelope.PAIR and to == IDS[1] and len(body)
            # Message type, and the error code of a PAIR_ERROR (the rest is random).
            answers.append("%d.%d" % (body[0], body[1] if body[0] == 0x7F else 0))
    assert not paired
    return ",".join(answers) + ":failed=%d" % p.failed


TARGETS = {
    "envelope": _envelope,
    "messages": _messages,
    "handshake1": _handshake1,
    "auth_challenge": _auth_challenge,
    "websocket": _websocket,
    "pairing": _pairing,
}


def classify(target, data):
    try:
        return "ok:" + TARGETS[target](data)
    except Exception as e:
        name = type(e).__name__
        if name in EXPECTED[target]:
            return "err:" + name
        return "CRASH:%s:%s" % (name, e)
