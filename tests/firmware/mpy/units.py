# Unit checks of firmware modules, run on the MicroPython unix port by
# tests/firmware/test_units.py. Each check prints "ok <name>"; any failure
# raises (non-zero exit fails the pytest test with this output).
import asyncio
import time

from homeseal import config, entities, envelope, messages, noise, relay, session, ws


def check(name, cond):
    if not cond:
        raise AssertionError(name)
    print("ok", name)


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return True
    return False


# -- envelope
check("envelope short", raises(envelope.EnvelopeError, envelope.parse, b"\x20" * 10))
check("envelope type", raises(envelope.EnvelopeError, envelope.parse, b"\x02" + bytes(10)))
check("envelope big", raises(envelope.EnvelopeError, envelope.parse, b"\x20" + bytes(4096)))
t, peer, payload = envelope.parse(b"\x20" + b"P" * 10 + b"xyz")
check("envelope parse", (t, peer, bytes(payload)) == (0x20, b"P" * 10, b"xyz"))
check("envelope header", bytes(envelope.header(0x30, b"Q" * 10)) == b"\x30" + b"Q" * 10)

# -- websocket accept key (RFC 6455 §1.3 example), SHA-1 fallback
check("ws accept", ws.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")

# -- backoff: uniform in [0, min(60 s, 2^attempt s)]
for attempt, cap in ((0, 1000), (3, 8000), (6, 60000), (30, 60000)):
    values = [relay.backoff_ms(attempt) for _ in range(300)]
    check(f"backoff {attempt}", min(values) >= 0 and cap // 2 < max(values) <= cap)

# -- URLs
check("url default path", config.parse_url("ws://h:81") == (False, "h", 81, "/ws/device"))
check(
    "url wss",
    config.parse_url("wss://r.example/x/ws/device") == (True, "r.example", 443, "/x/ws/device"),
)
check("url ipv6", config.parse_url("ws://[::1]:8443/") == (False, "::1", 8443, "/ws/device"))
check("url bad", raises(config.ConfigError, config.parse_url, "ws://h:port"))

# -- messages: strict parsing
good = b'{"t":"command","id":5,"key":"lamp","action":"turn_on","brightness":9}'
check("parse command", messages.parse(good)["brightness"] == 9)
for bad in (
    b'{"t":"command","id":5,"key":"lamp"}',  # missing action
    b'{"t":"command","id":0,"key":"lamp","action":"x"}',  # id out of range
    b'{"t":"command","id":5,"key":"lamp","action":"x","extra":1}',
    b'{"t":"command","id":5,"key":"lamp","action":"turn_on","brightness":256}',
    b'{"t":"command","id":5,"key":"lamp","action":"turn_off","brightness":3}',
    b'{"t":"ping","id":1.5}',
    b'{"t":"describe","id":1}',  # a device message is not accepted from a controller
    b'{"t":"ping"}',
    b"[]",
    b"\xff\xfe",
    b'{"t":"ping","id":1}' + b" " * 3072,
):
    check(f"reject {bad[:30]!r}", raises(messages.MessageError, messages.parse, bad))
check("result ok", messages.result(3) == b'{"t":"result","id":3,"ok":true}')

# -- the result cache keeps the last 32 ids
cache = messages.ResultCache(32)
for i in range(1, 34):
    cache.put(i, None if i % 2 else "bad_value")
check("cache evicts oldest", cache.find(1) == -1)
check("cache keeps the last 32", cache.error(cache.find(2)) == "bad_value")
check("cache keeps the newest", cache.find(33) >= 0 and cache.error(cache.find(33)) is None)


# -- entities with a fake hardware layer
LEVEL = {}


class FakeHw:
    class Input:
        def __init__(self, pin):
            self.pin = pin
            LEVEL.setdefault(pin, 1)

        def value(self):
            return LEVEL[self.pin]


d = entities.Debounced(FakeHw, 4, 50)
t0 = time.ticks_ms()
LEVEL[4] = 0
check("debounce waits", not d.poll(t0) and not d.poll(t0 + 30))
LEVEL[4] = 1  # a 30 ms glitch: ignored
check("debounce glitch", not d.poll(t0 + 40) and not d.poll(t0 + 100) and d.level == 1)
LEVEL[4] = 0
d.poll(t0 + 200)
check("debounce settles", d.poll(t0 + 260) and d.level == 0)

button_cfg = {"pin": 0, "inverted": False, "long_press_ms": 300, "factory_reset_ms": 1000}
b = entities.PairingButton(button_cfg, FakeHw)
LEVEL[0] = 0
events = [b.poll(t0 + ms) for ms in range(0, 1400, 20)]
check("button events", [e for e in events if e] == ["open", "reset"])
LEVEL[0] = 1
b.poll(t0 + 1500)
b.poll(t0 + 1600)
LEVEL[0] = 0
events = [b.poll(t0 + 2000 + ms) for ms in range(0, 500, 20)]
check("button short hold", [e for e in events if e] == ["open"])

# -- session limits: 2^20 messages per direction, 24 hours
c1 = noise.CipherState(bytes(32))
c2 = noise.CipherState(bytes(32))
s = session.Session(b"C" * 10, c1, c2)
ct = noise.CipherState(bytes(32)).encrypt_with_ad(b"", b"hi")
check("session decrypt", s.decrypt(ct) == b"hi")
c2.n = session.MAX_MESSAGES
check("session rx limit", raises(session.LimitReached, s.decrypt, ct))
c1.n = session.MAX_MESSAGES
check("session tx limit", raises(session.LimitReached, s.encrypt, b"x"))
s = session.Session(b"C" * 10, noise.CipherState(bytes(32)), noise.CipherState(bytes(32)))
s._t0 = time.ticks_add(time.ticks_ms(), -session.MAX_AGE_MS)
check("session age limit", raises(session.LimitReached, s.encrypt, b"x"))
check("handshake length", raises(ValueError, session.respond, None, None, b"", b"", bytes(47)))

# -- CA files: PEM blocks (a chain) or DER
pem = b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n" * 2
check("ca pem chain", relay._ca_certs(pem) == [b"\x00\x01\x02", b"\x00\x01\x02"])
check("ca der", relay._ca_certs(b"\x30\x82\x01") == [b"\x30\x82\x01"])
# -- CLAIM/RELEASE authentication (PROTOCOL §4.1): seq ‖ HMAC(k_ctl, type ‖ peer ‖ seq),
# values from CPython's hmac; seq beyond 2^30 still encodes (31-bit small ints on boards)
k_ctl = bytes(range(32))
h = bytes.fromhex
for ftype, seq, mac in (
    (0x30, 1, "b9f19bd7e9bf27f7714ad62a9a5769d6f9b8c0ca3071c4852877e3ce3ab63dc1"),
    (0x32, 0x7F020304, "4af31652cfa4e0f71284d65f32cae5f6cb4cd8ece19240597cafb9ed06cb5754"),
    (0x32, 0x81020304, "c8406451332b096e2827a0f87a6a477cc258a1906489b0c9ad98fb30243fdaf5"),
):
    got = relay.control_payload(k_ctl, ftype, b"R" * 10, seq)
    check(f"control payload {seq:x}", got == seq.to_bytes(4, "big") + h(mac))


class _FakeWS:
    def __init__(self):
        self.sent = []
        self.delays = [20, 0]  # the first send is slow: a later one must not overtake it

    async def send(self, header, payload):
        await asyncio.sleep_ms(self.delays.pop(0) if self.delays else 0)
        self.sent.append((bytes(header), bytes(payload)))


async def _control_sequence():
    r = relay.Relay({}, bytes(32), bytes(32), b"D" * 10, lambda m: None)
    r.ws = _FakeWS()
    check("control needs a connection", not await r.send(envelope.CLAIM, b"C" * 10))
    r.connected = True
    check("control needs k_ctl", not await r.send(envelope.CLAIM, b"C" * 10))
    r._k_ctl = k_ctl
    # Two tasks at once still number their frames in wire order.
    await asyncio.gather(
        r.send(envelope.CLAIM, b"C" * 10, b"ignored"), r.send(envelope.RELEASE, envelope.NO_PEER)
    )
    await r.send(envelope.SESSION, b"C" * 10, b"\x03x")  # not a control frame: unchanged
    await r.send(envelope.RELEASE, envelope.NO_PEER)
    sent = r.ws.sent
    check("control frames sent", len(sent) == 4)
    seqs = []
    for hdr, payload in (sent[0], sent[1], sent[3]):
        seq = int.from_bytes(payload[0:4], "big")
        seqs.append(seq)
        expected = relay.control_payload(k_ctl, hdr[0], hdr[1:11], seq)
        check(f"control mac {seq}", payload == expected)
    check("control seq 1, 2, 3", seqs == [1, 2, 3])
    check("session payload untouched", sent[2] == (b"\x20" + b"C" * 10, b"\x03x"))


asyncio.run(_control_sequence())
print("done")
