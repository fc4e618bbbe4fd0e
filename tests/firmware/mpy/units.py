# Unit checks of firmware modules, run once on the MicroPython unix port by
# tests/firmware/test_units.py, which makes one pytest test of each check.
#
#   micropython units.py STATE_DIR
#
# Every check is a function registered with @check("name") -- or, with
# cases=(("case name", arg, ...), ...), one check per case named
# "name case name" -- that returns True or raises. The names and cases are
# literals: test_units.py reads them from this file (with ast) to collect the
# tests without starting MicroPython. Each check prints "ok NAME" or
# "FAIL NAME: why", and a failing check does not stop the others; "done" ends
# the run.
import asyncio
import json
import os
import sys
import time

from homeseal import (
    actuators,
    bootstate,
    config,
    entities,
    envelope,
    hw_sim,
    ids,
    messages,
    noise,
    pairing,
    relay,
    session,
    store,
    ws,
    x25519,
)

STATE_DIR = sys.argv[1]
_CHECKS = []


def check(name, cases=None):
    def register(fn):
        if cases is None:
            _CHECKS.append((name, fn, ()))
        else:
            for case in cases:
                _CHECKS.append((name + " " + case[0], fn, case[1:]))
        return fn

    return register


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return True
    return False


# ------------------------------------------------------------ envelope


@check("envelope short")
def _():
    return raises(envelope.EnvelopeError, envelope.parse, b"\x20" * 10)


@check("envelope type")
def _():
    return raises(envelope.EnvelopeError, envelope.parse, b"\x02" + bytes(10))


@check("envelope big")
def _():
    return raises(envelope.EnvelopeError, envelope.parse, b"\x20" + bytes(4096))


@check("envelope parse")
def _():
    t, peer, payload = envelope.parse(b"\x20" + b"P" * 10 + b"xyz")
    return (t, peer, bytes(payload)) == (0x20, b"P" * 10, b"xyz")


@check("envelope header")
def _():
    return bytes(envelope.header(0x30, b"Q" * 10)) == b"\x30" + b"Q" * 10


# ------------------------------------------------------------ websocket accept key


@check("ws accept")
def _():
    # RFC 6455 §1.3's example (hashlib.sha1 where the build has it, as the TLS one
    # does; "ws sha1 fallback" checks the fallback).
    return ws.accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@check(
    "ws sha1 fallback",
    cases=(
        ("empty", b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        ("abc", b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        (
            "two blocks",
            b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
        ),
    ),
)
def _(data, digest):
    # FIPS 180-4's examples (the schedule is the 16-word ring of §6.1.3).
    return ws._sha1(data) == bytes.fromhex(digest)


# ------------------------------------------------------------ backoff


@check("backoff", cases=(("0", 0, 1000), ("3", 3, 8000), ("6", 6, 60000), ("30", 30, 60000)))
def _(attempt, cap):
    # Uniform in [0, min(60 s, 2^attempt s)].
    values = [relay.backoff_ms(attempt) for _ in range(300)]
    return min(values) >= 0 and cap // 2 < max(values) <= cap


# ------------------------------------------------------------ URLs


@check("url default path")
def _():
    return config.parse_url("ws://h:81") == (False, "h", 81, "/ws/device")


@check("url wss")
def _():
    return config.parse_url("wss://r.example/x/ws/device") == (
        True,
        "r.example",
        443,
        "/x/ws/device",
    )


@check("url ipv6")
def _():
    return config.parse_url("ws://[::1]:8443/") == (False, "::1", 8443, "/ws/device")


@check("url bad")
def _():
    return raises(config.ConfigError, config.parse_url, "ws://h:port")


@check("example config entities")
def _():
    # firmware/config.example.json, as a user copies it (its wss:// relay, whose CA
    # file is not here, is swapped for a ws:// one).
    root = sys.argv[0].rsplit("/tests/", 1)[0]
    with open(root + "/firmware/config.example.json") as f:
        cfg = json.load(f)
    cfg["relay"] = {"url": "ws://relay.example/ws/device"}
    ents = config.validate(cfg)["entities"]
    # The health entities are diagnostic by default, uptime and free_heap disabled too.
    diag = ("chip", "address", "last_restart", "uptime", "free_heap", "reconnects", "wifi_signal")
    disabled = ("uptime", "free_heap")
    for e in ents:
        if e["key"] in diag:
            expect(e["category"] == "diagnostic", e)
            expect(e["disabled_by_default"] == (e["key"] in disabled), e)
    kinds = set(e["kind"] for e in ents)
    expect(kinds == set(config.KINDS), "every kind: %r" % kinds)
    vent = next(e for e in ents if e["key"] == "vent")
    expect(vent["output"] == "servo" and vent["pulse_us"] == [1000, 2000], vent)
    wall = next(e for e in ents if e["key"] == "wall")
    expect(wall["types"] == ["single", "double", "long"], wall)
    modes = [e["color_mode"] for e in ents if e["kind"] == "light"]
    expect(modes == ["brightness", "rgbw", "color_temp"], modes)
    door = next(e for e in ents if e["kind"] == "cover")
    expect((door["restore"], door["interlock_ms"], door["close_time"]) == ("last", 500, 16.5), door)
    # Its describe and full state fit a message (the device checks both at boot).
    ents_ = entities.Entities(ents, hw_sim)
    expect(len(messages.describe("0.1.0", "m", "Garage", ents_.describe())) < 3072, "describe")
    expect(len(messages.state(ents_.full_state())) < 3072, "state")
    return all(e["category"] is None for e in ents if e["key"] not in diag)


# ------------------------------------------------------------ messages: strict parsing


@check("parse command")
def _():
    good = b'{"t":"command","id":5,"key":"lamp","action":"turn_on","brightness":9}'
    return messages.parse(good)["brightness"] == 9


def _cmd(action, args):
    return b'{"t":"command","id":5,"key":"k","action":"%s"%s}' % (action.encode(), args.encode())


@check(
    "parse command arguments",
    cases=(
        ("value", "set", ',"value":12.5', "value", 12.5),
        ("negative value", "set", ',"value":-3', "value", -3),
        ("option", "select", ',"option":"eco"', "option", "eco"),
        ("none", "press", "", "brightness", None),
        ("rgb", "turn_on", ',"rgb":[255,0,7]', "rgb", [255, 0, 7]),
        ("rgbw", "turn_on", ',"rgbw":[0,0,0,255]', "rgbw", [0, 0, 0, 255]),
        ("kelvin", "turn_on", ',"kelvin":1000', "kelvin", 1000),
        ("kelvin 20000", "turn_on", ',"kelvin":20000', "kelvin", 20000),
        ("brightness and rgb", "turn_on", ',"brightness":9,"rgb":[1,2,3]', "rgb", [1, 2, 3]),
        ("brightness and rgbw", "turn_on", ',"rgbw":[1,2,3,4],"brightness":9', "brightness", 9),
        ("brightness and kelvin", "turn_on", ',"brightness":0,"kelvin":4000', "kelvin", 4000),
        ("percentage", "turn_on", ',"percentage":100', "percentage", 100),
        ("percentage 0", "turn_on", ',"percentage":0', "percentage", 0),
        ("position", "set_position", ',"position":0', "position", 0),
        ("position 100", "set_position", ',"position":100', "position", 100),
        ("forward", "set_direction", ',"direction":"forward"', "direction", "forward"),
        ("reverse", "set_direction", ',"direction":"reverse"', "direction", "reverse"),
    ),
)
def _(action, args, name, value):
    m = messages.parse(_cmd(action, args))
    return m.get(name) == value and m["action"] == action


@check("event message")
def _():
    ev = json.loads(messages.event("wall", "double"))
    return ev == {"t": "event", "key": "wall", "type": "double"}


@check(
    "reject",
    cases=(
        ("missing action", b'{"t":"command","id":5,"key":"lamp"}'),
        ("id out of range", b'{"t":"command","id":0,"key":"lamp","action":"x"}'),
        ("extra field", b'{"t":"command","id":5,"key":"lamp","action":"x","extra":1}'),
        (
            "brightness 256",
            b'{"t":"command","id":5,"key":"lamp","action":"turn_on","brightness":256}',
        ),
        (
            "brightness off",
            b'{"t":"command","id":5,"key":"lamp","action":"turn_off","brightness":3}',
        ),
        ("float id", b'{"t":"ping","id":1.5}'),
        ("device type", b'{"t":"describe","id":1}'),
        ("no id", b'{"t":"ping"}'),
        ("not an object", b"[]"),
        ("not UTF-8", b"\xff\xfe"),
        ("value off set", b'{"t":"command","id":5,"key":"f","action":"turn_on","value":3}'),
        ("value string", b'{"t":"command","id":5,"key":"f","action":"set","value":"3"}'),
        ("value bool", b'{"t":"command","id":5,"key":"f","action":"set","value":true}'),
        ("value null", b'{"t":"command","id":5,"key":"f","action":"set","value":null}'),
        ("value infinite", b'{"t":"command","id":5,"key":"f","action":"set","value":1e999}'),
        ("value nan", b'{"t":"command","id":5,"key":"f","action":"set","value":NaN}'),
        ("option off select", b'{"t":"command","id":5,"key":"m","action":"set","option":"a"}'),
        ("option empty", b'{"t":"command","id":5,"key":"m","action":"select","option":""}'),
        (
            "option 33",
            b'{"t":"command","id":5,"key":"m","action":"select","option":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}',
        ),
        ("option number", b'{"t":"command","id":5,"key":"m","action":"select","option":1}'),
        (
            "two arguments",
            b'{"t":"command","id":5,"key":"m","action":"select","option":"a","value":1}',
        ),
    ),
)
def _(bad):
    return raises(messages.MessageError, messages.parse, bad)


@check(
    "reject argument",
    cases=(
        ("rgb off turn_on", "turn_off", ',"rgb":[1,2,3]'),
        ("rgb two", "turn_on", ',"rgb":[1,2]'),
        ("rgb four", "turn_on", ',"rgb":[1,2,3,4]'),
        ("rgb 256", "turn_on", ',"rgb":[1,256,3]'),
        ("rgb negative", "turn_on", ',"rgb":[1,-1,3]'),
        ("rgb float", "turn_on", ',"rgb":[1,2.0,3]'),
        ("rgb bool", "turn_on", ',"rgb":[1,true,3]'),
        ("rgb not a list", "turn_on", ',"rgb":"#ff0000"'),
        ("rgb object", "turn_on", ',"rgb":{"r":1}'),
        ("rgbw three", "turn_on", ',"rgbw":[1,2,3]'),
        ("rgbw string", "turn_on", ',"rgbw":[1,2,3,"4"]'),
        ("kelvin 999", "turn_on", ',"kelvin":999'),
        ("kelvin 20001", "turn_on", ',"kelvin":20001'),
        ("kelvin float", "turn_on", ',"kelvin":3000.5'),
        ("kelvin with set", "set", ',"kelvin":3000'),
        ("percentage 101", "turn_on", ',"percentage":101'),
        ("percentage -1", "turn_on", ',"percentage":-1'),
        ("percentage float", "turn_on", ',"percentage":50.0'),
        ("percentage off", "turn_off", ',"percentage":50'),
        ("position 101", "set_position", ',"position":101'),
        ("position -1", "set_position", ',"position":-1'),
        ("position float", "set_position", ',"position":50.5'),
        ("position null", "set_position", ',"position":null'),
        ("position with open", "open", ',"position":50'),
        ("direction other", "set_direction", ',"direction":"left"'),
        ("direction case", "set_direction", ',"direction":"Forward"'),
        ("direction number", "set_direction", ',"direction":1'),
        ("direction with turn_on", "turn_on", ',"direction":"reverse"'),
        ("brightness with set_position", "set_position", ',"brightness":9'),
        ("rgb and kelvin", "turn_on", ',"rgb":[1,2,3],"kelvin":3000'),
        ("rgb and rgbw", "turn_on", ',"rgb":[1,2,3],"rgbw":[1,2,3,4]'),
        ("brightness and percentage", "turn_on", ',"brightness":9,"percentage":9'),
        ("rgb and percentage", "turn_on", ',"rgb":[1,2,3],"percentage":9'),
        ("three", "turn_on", ',"brightness":9,"rgb":[1,2,3],"kelvin":3000'),
        ("press with an argument", "press", ',"brightness":9'),
        ("unknown argument", "turn_on", ',"color":[1,2,3]'),
    ),
)
def _(action, args):
    return raises(messages.MessageError, messages.parse, _cmd(action, args))


@check("reject too long")
def _():
    return raises(messages.MessageError, messages.parse, b'{"t":"ping","id":1}' + b" " * 3072)


@check("result ok")
def _():
    return messages.result(3) == b'{"t":"result","id":3,"ok":true}'


# ------------------------------------------------------------ the result cache


def _cache():
    cache = messages.ResultCache(32)
    for i in range(1, 34):
        cache.put(i, None if i % 2 else "bad_value")
    return cache


@check("cache evicts oldest")
def _():
    return _cache().find(1) == -1


@check("cache keeps the last 32")
def _():
    cache = _cache()
    return cache.error(cache.find(2)) == "bad_value"


@check("cache keeps the newest")
def _():
    cache = _cache()
    return cache.find(33) >= 0 and cache.error(cache.find(33)) is None


# ------------------------------------------------------------ entities with a fake hardware layer

LEVEL = {}


class FakeHw:
    class Input:
        def __init__(self, pin):
            self.pin = pin
            LEVEL.setdefault(pin, 1)

        def value(self):
            return LEVEL[self.pin]


@check("debounce")
def _():
    LEVEL[4] = 1
    d = entities.Debounced(FakeHw, 4, 50)
    t0 = time.ticks_ms()
    LEVEL[4] = 0
    expect(not d.poll(t0) and not d.poll(t0 + 30), "a level held 30 ms counted")
    LEVEL[4] = 1  # a 30 ms glitch: ignored
    expect(not d.poll(t0 + 40) and not d.poll(t0 + 100) and d.level == 1, "a glitch counted")
    LEVEL[4] = 0
    d.poll(t0 + 200)
    expect(d.poll(t0 + 260) and d.level == 0, "a level held 60 ms did not count")
    return True


@check("button events")
def _():
    LEVEL[0] = 1
    cfg = {"pin": 0, "inverted": False, "long_press_ms": 300, "factory_reset_ms": 1000}
    b = entities.PairingButton(cfg, FakeHw)
    t0 = time.ticks_ms()
    LEVEL[0] = 0
    events = [b.poll(t0 + ms) for ms in range(0, 1400, 20)]
    expect([e for e in events if e] == ["open", "reset"], "a long hold: %r" % events)
    LEVEL[0] = 1
    b.poll(t0 + 1500)
    b.poll(t0 + 1600)
    LEVEL[0] = 0
    events = [b.poll(t0 + 2000 + ms) for ms in range(0, 500, 20)]
    expect([e for e in events if e] == ["open"], "a short hold: %r" % events)
    return True


# ------------------------------------------------------------ number, select, text_sensor, event
# On the unix port's hardware layer: levels and duties are read back from PINS.


def _ent(**fields):
    """One entity's config, validated, with every default filled in."""
    fields.setdefault("key", "e")
    fields.setdefault("name", "E")
    return config.validate({"relay": {"url": "ws://x"}, "entities": [fields]})["entities"][0]


@check("number snaps to the step and refuses values out of range")
def _():
    n = entities.Number(_ent(kind="number", min=0, max=100, step=5), hw_sim)
    expect(n.state() == 0 and n.describe()["step"] == 5, n.describe())
    expect(n.command("set", {"value": 12}) is None and n.state() == 10, n.state())
    expect(n.command("set", {"value": 13.1}) is None and n.state() == 15, n.state())
    expect(type(n.state()) is int, "an int step from an int min: %r" % n.state())
    for bad in (101, -1, None):
        expect(n.command("set", {"value": bad}) == entities.BAD_VALUE, bad)
    expect(n.command("turn_on", {}) == entities.UNSUPPORTED_ACTION, "turn_on")
    f = entities.Number(_ent(kind="number", min=0.5, max=2, step=0.1), hw_sim)
    expect(f.command("set", {"value": 1.234}) is None and f.state() == 1.2, f.state())
    expect(f.command("set", {"value": 2}) is None and f.state() == 2.0, f.state())
    c = entities.Number(_ent(kind="number", min=0, max=10, step=6, initial=7), hw_sim)
    expect(c.state() == 6, "initial snapped: %r" % c.state())
    expect(
        c.command("set", {"value": 10}) is None and c.state() == 10,
        "clamped to max: %r" % c.state(),
    )
    d = _ent(kind="number", min=-5, max=5, unit="°C", mode="box", device_class="temperature")
    d = entities.Number(d, hw_sim).describe()
    return d["min"] == -5 and d["max"] == 5 and (d["unit"], d["mode"]) == ("°C", "box")


@check("number pwm and servo duty")
def _():
    p = entities.Number(_ent(kind="number", output="pwm", pin=40, freq=500), hw_sim)
    expect(hw_sim.PINS["40"] == 0, "at min: %r" % hw_sim.PINS["40"])
    p.command("set", {"value": 25})
    expect(hw_sim.PINS["40"] == 16384, hw_sim.PINS["40"])
    p.command("set", {"value": 100})
    expect(hw_sim.PINS["40"] == 65535, hw_sim.PINS["40"])
    cfg = _ent(kind="number", output="servo", pin=41, max=180, initial=90)
    s = entities.Number(cfg, hw_sim)
    expect(hw_sim.PINS["41"] == 4915, "1.5 ms: %r" % hw_sim.PINS["41"])
    s.command("set", {"value": 0})
    expect(hw_sim.PINS["41"] == 3277, "1 ms: %r" % hw_sim.PINS["41"])
    cfg = _ent(kind="number", output="servo", pin=42, pulse_us=[500, 2500])
    s = entities.Number(cfg, hw_sim)
    s.command("set", {"value": 100})
    return hw_sim.PINS["42"] == 8192  # 2.5 ms of 20


@check("number and select restore")
def _():
    num = _ent(kind="number", key="n", max=50, step=5, initial=20, restore="last")
    sel = _ent(kind="select", key="s", options=["a", "b"], restore="last")
    ents = entities.Entities([num, sel], hw_sim, {"n": 37, "s": "b"})
    expect(ents.full_state() == {"n": 35, "s": "b"}, ents.full_state())
    expect(ents.restorable() == {"n": 35, "s": "b"}, ents.restorable())
    # Values the device cannot trust give the initial ones.
    ents = entities.Entities([num, sel], hw_sim, {"n": 500, "s": "c"})
    expect(ents.full_state() == {"n": 20, "s": "a"}, ents.full_state())
    ents = entities.Entities([num, sel], hw_sim, {"n": True, "s": ["b"]})
    expect(ents.full_state() == {"n": 20, "s": "a"}, ents.full_state())
    num["restore"] = sel["restore"] = "off"
    ents = entities.Entities([num, sel], hw_sim, {"n": 35, "s": "b"})
    expect(ents.restorable() is None, ents.restorable())
    return ents.full_state() == {"n": 20, "s": "a"}


@check("select one-hot pins")
def _():
    pins = ("43", "44", "45")
    cfg = _ent(kind="select", options=["red", "green", "blue"], pins=[43, 44, 45])
    s = entities.Select(cfg, hw_sim)
    expect(s.state() == "red" and s.describe()["options"] == cfg["options"], s.describe())
    expect([hw_sim.PINS[p] for p in pins] == [1, 0, 0], [hw_sim.PINS[p] for p in pins])
    expect(s.command("select", {"option": "blue"}) is None and s.state() == "blue", s.state())
    expect([hw_sim.PINS[p] for p in pins] == [0, 0, 1], [hw_sim.PINS[p] for p in pins])
    expect(s.command("select", {"option": "pink"}) == entities.BAD_VALUE, "pink")
    expect(s.command("select", {}) == entities.BAD_VALUE, "no option")
    expect(s.command("turn_on", {}) == entities.UNSUPPORTED_ACTION, "turn_on")
    expect([hw_sim.PINS[p] for p in pins] == [0, 0, 1], "a refused option changed the pins")
    cfg = _ent(kind="select", options=["a", "b"], initial="b", pins=[46, 47], inverted=True)
    s = entities.Select(cfg, hw_sim)
    expect(s.state() == "b", s.state())
    expect((hw_sim.PINS["46"], hw_sim.PINS["47"]) == (1, 0), "inverted")
    plain = entities.Select(_ent(kind="select", options=["x"]), hw_sim)
    return plain.command("select", {"option": "x"}) is None and plain.state() == "x"


@check("text sensor sources")
def _():
    t = entities.TextSensor(_ent(kind="text_sensor", interval=2), hw_sim)
    expect(t.state() == "127.0.0.1", t.state())
    d = t.describe()
    expect(d == {"key": "e", "kind": "text_sensor", "name": "E"}, d)
    t0 = time.ticks_ms()
    hw_sim.PINS["ip"] = "10.0.0.7"
    expect(not t.poll(t0) and not t.poll(t0 + 1000), "read before its interval")
    expect(t.poll(t0 + 2000) and t.state() == "10.0.0.7", t.state())
    expect(not t.poll(t0 + 4000), "no change, no push")
    hw_sim.PINS["ip"] = "x" * 100
    expect(t.poll(t0 + 6000) and t.state() == "x" * 64, "truncated to 64")
    hw_sim.PINS["ip"] = "127.0.0.1"
    expect(hw_sim._handle({"op": "set", "pin": "ip", "value": "192.168.1.9"})["ok"], "set ip")
    expect(not hw_sim._handle({"op": "set", "pin": "ip", "value": 3})["ok"], "ip number")
    expect(not hw_sim._handle({"op": "set", "pin": "ip", "value": "y" * 65})["ok"], "ip 65")
    hw_sim.PINS["ip"] = "127.0.0.1"
    r = entities.TextSensor(_ent(kind="text_sensor", source="restart_reason"), hw_sim)
    return r.state() == "power_on"


def _presses(cfg, timeline, until):
    """Drive an event entity through Entities.poll every 10 ms: timeline is
    ((ms, level), ...) for its pin; the (ms, type) of each event it fired."""
    pin = str(cfg["pin"])
    hw_sim.PINS[pin] = 1
    ents = entities.Entities([cfg], hw_sim)
    t0 = time.ticks_ms()
    got = []
    for ms in range(0, until, 10):
        for at, level in timeline:
            if at == ms:
                hw_sim.PINS[pin] = level
        evs = []
        expect(ents.poll(time.ticks_add(t0, ms), evs) == [], "an event is not a state")
        for key, etype in evs:
            expect(key == cfg["key"], key)
            got.append((ms, etype))
    hw_sim.PINS[pin] = 1
    return got


def _types(got):
    return [t for _, t in got]


@check("event single double long")
def _():
    cfg = _ent(kind="event", pin=48)  # debounce 30, long 800, double 300
    d = entities.Event(cfg, hw_sim).describe()
    expect(d["event_types"] == ["single", "double", "long"] and "category" not in d, d)
    got = _presses(cfg, ((0, 0), (100, 1)), 1000)
    # Released at 130 (debounced), single when the window closes 300 ms later.
    expect(_types(got) == ["single"] and 420 <= got[0][0] <= 450, got)
    got = _presses(cfg, ((0, 0), (100, 1), (250, 0), (350, 1)), 1200)
    expect(_types(got) == ["double"] and 370 <= got[0][0] <= 400, got)
    got = _presses(cfg, ((0, 0), (1500, 1)), 2500)
    expect(_types(got) == ["long"] and 820 <= got[0][0] <= 850, "sent while held: %r" % got)
    # Two presses further apart than the window: two singles.
    got = _presses(cfg, ((0, 0), (100, 1), (600, 0), (700, 1)), 1500)
    expect(_types(got) == ["single", "single"], got)
    # A 10 ms bounce is no press at all.
    got = _presses(cfg, ((0, 0), (10, 1)), 600)
    expect(got == [], got)
    inv = _ent(kind="event", pin=49, inverted=True)
    got = _presses(inv, ((0, 0),), 600)  # released (low) throughout
    expect(got == [], "inverted: a low pin is released: %r" % got)
    return True


@check("event without double or long")
def _():
    cfg = _ent(kind="event", pin=48, double_ms=0)
    expect(cfg["types"] == ["single", "long"], cfg["types"])
    got = _presses(cfg, ((0, 0), (100, 1)), 800)
    expect(_types(got) == ["single"] and got[0][0] <= 140, "single at release: %r" % got)
    cfg = _ent(kind="event", pin=48, types=["single", "long"])
    got = _presses(cfg, ((0, 0), (100, 1), (200, 0), (300, 1)), 1000)
    expect(_types(got) == ["single", "single"], "no double told apart: %r" % got)
    cfg = _ent(kind="event", pin=48, types=["single", "double"])
    got = _presses(cfg, ((0, 0), (1500, 1)), 2500)
    expect(_types(got) == ["single"], "no long told apart: %r" % got)
    cfg = _ent(kind="event", pin=48, types=["long"])
    got = _presses(cfg, ((0, 0), (100, 1), (300, 0), (1500, 1)), 2500)
    return _types(got) == ["long"]


@check("event run hands events to on_event")
def _():
    cfg = _ent(kind="event", pin=48, debounce_ms=0, double_ms=0)
    ents = entities.Entities([cfg], hw_sim)
    seen = []

    async def on_change(keys):
        seen.append(("change", keys))

    async def on_event(key, etype):
        seen.append((key, etype))

    async def go():
        task = asyncio.create_task(ents.run(on_change, None, None, on_event))
        hw_sim.PINS["48"] = 0
        await asyncio.sleep_ms(100)
        hw_sim.PINS["48"] = 1
        await asyncio.sleep_ms(100)
        task.cancel()

    asyncio.run(go())
    return seen == [("e", "single")]


@check("command arguments of the older kinds")
def _():
    ents = entities.Entities(
        [
            _ent(kind="switch", key="sw", pin=50),
            _ent(kind="light", key="li", pin=51),
            _ent(kind="button", key="bu", pin=52),
        ],
        hw_sim,
    )
    # Entities take the parsed command; its arguments by name.
    bad = entities.BAD_VALUE
    expect(ents.command("sw", "turn_on", {"brightness": 5}) == bad, "switch with brightness")
    expect(ents.command("sw", "turn_on", {"percentage": 5}) == bad, "switch with a percentage")
    expect(ents.command("sw", "turn_on", {}) is None and hw_sim.PINS["50"] == 1, "switch")
    expect(ents.command("li", "turn_on", {"brightness": 300}) == bad, "brightness 300")
    expect(ents.command("li", "turn_on", {"brightness": 0}) == bad, "brightness 0")
    for arg in ({"rgb": [1, 2, 3]}, {"rgbw": [1, 2, 3, 4]}, {"kelvin": 3000}, {"percentage": 5}):
        expect(ents.command("li", "turn_on", arg) == bad, "a brightness light with %r" % arg)
    expect(ents.command("li", "turn_on", {"brightness": 9}) is None, "light")
    expect(hw_sim.PINS["51"] == 9 * 257, hw_sim.PINS["51"])
    msg = messages.parse(b'{"t":"command","id":5,"key":"li","action":"turn_off"}')
    expect(ents.command("li", msg["action"], msg) is None and hw_sim.PINS["51"] == 0, "off")
    expect(ents.command("li", "turn_on", {}) is None and hw_sim.PINS["51"] == 9 * 257, "kept")
    expect(ents.command("bu", "press", {}) is None, "button")
    return ents.command("nope", "set", {"value": 1}) == entities.UNKNOWN_ENTITY


# ------------------------------------------------------------ colour lights, fans, covers (§7)


def _duties(*pins):
    return [hw_sim.PINS[str(p)] for p in pins]


@check("rgb light duty is colour times brightness")
def _():
    li = actuators.ColourLight(_ent(kind="light", color_mode="rgb", pins=[60, 61, 62]), hw_sim)
    d = li.describe()
    expect(d["color_mode"] == "rgb" and "min_kelvin" not in d, d)
    expect(li.state() == {"on": False, "brightness": 255, "rgb": [255, 255, 255]}, li.state())
    expect(_duties(60, 61, 62) == [0, 0, 0], "off at boot")
    expect(li.command("turn_on", {}) is None, "turn_on")
    expect(_duties(60, 61, 62) == [65535] * 3, _duties(60, 61, 62))
    expect(li.command("turn_on", {"rgb": [255, 128, 0], "brightness": 128}) is None, "both")
    # 255 * 128 / 255 * 257 = 32896; 128 * 128 / 255 * 257 = 16513.0
    expect(_duties(60, 61, 62) == [32896, 16513, 0], _duties(60, 61, 62))
    expect(li.command("turn_on", {"rgb": [0, 0, 255]}) is None, "colour only")
    expect(li.state() == {"on": True, "brightness": 128, "rgb": [0, 0, 255]}, li.state())
    expect(_duties(60, 61, 62) == [0, 0, 32896], "brightness kept")
    expect(li.command("turn_on", {"brightness": 255}) is None, "brightness only")
    expect(_duties(60, 61, 62) == [0, 0, 65535], "colour kept")
    expect(li.command("turn_off", {}) is None and _duties(60, 61, 62) == [0, 0, 0], "off")
    expect(li.state() == {"on": False, "brightness": 255, "rgb": [0, 0, 255]}, li.state())
    for arg in ({"kelvin": 3000}, {"rgbw": [1, 2, 3, 4]}, {"percentage": 50}):
        expect(li.command("turn_on", arg) == entities.BAD_VALUE, arg)
    expect(li.state()["on"] is False, "a refused command changed nothing")
    inv = _ent(kind="light", color_mode="rgb", pins=[63, 64, 65], inverted=True)
    actuators.ColourLight(inv, hw_sim).command("turn_on", {"rgb": [255, 0, 51]})
    return _duties(63, 64, 65) == [0, 65535, 65535 - 13107]


@check("rgbw light duty")
def _():
    cfg = _ent(kind="light", color_mode="rgbw", pins=[60, 61, 62, 63])
    li = actuators.ColourLight(cfg, hw_sim)
    expect(li.state()["rgbw"] == [255, 255, 255, 255], li.state())
    expect(li.command("turn_on", {"rgbw": [0, 51, 102, 255], "brightness": 51}) is None, "on")
    # 51 / 255 of 51 / 255 of 65535: 2621.4; 102: 5242.8; 255: 13107
    expect(_duties(60, 61, 62, 63) == [0, 2621, 5243, 13107], _duties(60, 61, 62, 63))
    expect(li.command("turn_on", {"rgb": [1, 2, 3]}) == entities.BAD_VALUE, "rgb")
    return li.command("turn_on", {"kelvin": 3000}) == entities.BAD_VALUE


@check("color_temp light splits brightness between warm and cold")
def _():
    cfg = _ent(kind="light", color_mode="color_temp", pins=[60, 61], min_kelvin=2700,
               max_kelvin=6500)  # fmt: skip
    li = actuators.ColourLight(cfg, hw_sim)
    d = li.describe()
    expect((d["color_mode"], d["min_kelvin"], d["max_kelvin"]) == ("color_temp", 2700, 6500), d)
    expect(li.state() == {"on": False, "brightness": 255, "kelvin": 4600}, "midpoint")
    expect(li.command("turn_on", {}) is None, "on")
    # pins: [warm, cold]; half of 65535 each, the odd step to the cold one.
    expect(_duties(60, 61) == [32767, 32768], _duties(60, 61))
    expect(li.command("turn_on", {"kelvin": 2700}) is None and _duties(60, 61) == [65535, 0], 1)
    expect(li.command("turn_on", {"kelvin": 6500}) is None and _duties(60, 61) == [0, 65535], 2)
    expect(li.command("turn_on", {"kelvin": 3650, "brightness": 102}) is None, "both")
    # 102 * 257 = 26214 in all; a quarter of it cold
    expect(_duties(60, 61) == [19660, 6554] and sum(_duties(60, 61)) == 26214, _duties(60, 61))
    for bad in ({"kelvin": 2699}, {"kelvin": 6501}, {"rgb": [1, 2, 3]}, {"brightness": 0}):
        expect(li.command("turn_on", bad) == entities.BAD_VALUE, bad)
    expect(li.state() == {"on": True, "brightness": 102, "kelvin": 3650}, li.state())
    li.command("turn_off", {})
    expect(_duties(60, 61) == [0, 0], "off")
    odd = _ent(kind="light", color_mode="color_temp", pins=[62, 63], min_kelvin=2000,
               max_kelvin=5001)  # fmt: skip
    return actuators.ColourLight(odd, hw_sim).state()["kelvin"] == 3501  # 3500.5, rounded


@check("colour light restore")
def _():
    rgb = _ent(kind="light", key="a", color_mode="rgb", pins=[60, 61, 62], restore="last")
    ct = _ent(kind="light", key="b", color_mode="color_temp", pins=[63, 64], min_kelvin=2000,
              max_kelvin=6000, restore="last")  # fmt: skip
    saved = {"a": {"on": True, "brightness": 255, "rgb": [255, 0, 0]},
             "b": {"on": False, "brightness": 10, "kelvin": 6000}}  # fmt: skip
    ents = entities.Entities([rgb, ct], hw_sim, saved)
    expect(ents.full_state() == saved and ents.restorable() == saved, ents.full_state())
    expect(_duties(60, 61, 62, 63, 64) == [65535, 0, 0, 0, 0], _duties(60, 61, 62, 63, 64))
    # A colour the light cannot take: its default colour, the rest as saved.
    bad = {"a": {"on": True, "brightness": 9, "rgb": [1, 2]},
           "b": {"on": True, "brightness": 9, "kelvin": 7000}}  # fmt: skip
    s = entities.Entities([rgb, ct], hw_sim, bad).full_state()
    expect(s["a"]["rgb"] == [255, 255, 255] and s["a"]["brightness"] == 9, s)
    expect(s["b"]["kelvin"] == 4000 and s["b"]["on"] is True, s)
    rgb["restore"] = "on"
    s = entities.Entities([rgb], hw_sim, saved).full_state()
    return s["a"] == {"on": True, "brightness": 255, "rgb": [255, 255, 255]}


@check("actuators are loaded only by a config with a colour light, a fan or a cover")
def _():
    import homeseal

    def forget():
        homeseal.unload("actuators")  # as if never imported (sys.modules, the package)
        return "homeseal.actuators" not in sys.modules

    cover = _ent(kind="cover", key="c", open_pin=62, close_pin=63, open_time=1, close_time=1)
    rgb = _ent(kind="light", key="c", color_mode="rgb", pins=[62, 63, 64])
    try:
        plain = [_ent(kind="switch", key="s", pin=60), _ent(kind="light", key="l", pin=61)]
        expect(forget(), "still loaded")
        ents = entities.Entities(plain, hw_sim)
        expect("homeseal.actuators" not in sys.modules, "loaded for a switch and a light")
        expect(type(ents.all[1]) is entities.Light, ents.all)
        for extra in (_ent(kind="fan", key="f", pin=62), cover, rgb):
            forget()
            ents = entities.Entities(plain + [extra], hw_sim)
            expect("homeseal.actuators" in sys.modules, "not loaded for a %s" % extra["kind"])
            expect(type(ents.all[2]).__name__ in ("Fan", "Cover", "ColourLight"), ents.all)
    finally:
        # Back to the module the other checks hold (and patch).
        sys.modules["homeseal.actuators"] = actuators
        homeseal.actuators = actuators
    return True


@check("fan percentage and direction")
def _():
    f = actuators.Fan(_ent(kind="fan", pin=60, direction_pin=61), hw_sim)
    expect(f.describe()["reversible"] is True, f.describe())
    expect(f.state() == {"on": False, "percentage": 100, "direction": "forward"}, f.state())
    expect(_duties(60, 61) == [0, 0], "off at boot")
    expect(f.command("turn_on", {}) is None and _duties(60, 61) == [65535, 0], "full speed")
    expect(f.command("turn_on", {"percentage": 33}) is None, "33 %")
    expect(_duties(60, 61) == [21627, 0], _duties(60, 61))  # 21626.55
    expect(f.command("turn_off", {}) is None and _duties(60, 61) == [0, 0], "off")
    expect(f.state() == {"on": False, "percentage": 33, "direction": "forward"}, "kept")
    expect(f.command("set_direction", {"direction": "reverse"}) is None, "reverse")
    expect(_duties(60, 61) == [0, 1] and f.state()["direction"] == "reverse", "direction pin")
    expect(f.command("turn_on", {}) is None and _duties(60, 61) == [21627, 1], "on again")
    expect(f.command("set_direction", {"direction": "forward"}) is None, "forward")
    expect(_duties(60, 61) == [21627, 0], _duties(60, 61))
    for bad in ({"percentage": 0}, {"brightness": 9}, {"rgb": [1, 2, 3]}):
        expect(f.command("turn_on", bad) == entities.BAD_VALUE, bad)
    expect(f.command("set_direction", {}) == entities.BAD_VALUE, "no direction")
    expect(f.command("set", {"value": 3}) == entities.UNSUPPORTED_ACTION, "set")
    plain = actuators.Fan(_ent(kind="fan", pin=62, inverted=True), hw_sim)
    expect("reversible" not in plain.describe(), plain.describe())
    expect(plain.state() == {"on": False, "percentage": 100}, plain.state())
    expect(hw_sim.PINS["62"] == 65535, "inverted off")
    r = plain.command("set_direction", {"direction": "reverse"})
    expect(r == entities.UNSUPPORTED_ACTION, r)
    return plain.command("turn_on", {"percentage": 1}) is None and hw_sim.PINS["62"] == 64880


@check("fan restore")
def _():
    cfg = _ent(kind="fan", key="f", pin=60, direction_pin=61, restore="last")
    saved = {"f": {"on": True, "percentage": 40, "direction": "reverse"}}
    ents = entities.Entities([cfg], hw_sim, saved)
    expect(ents.full_state() == saved and _duties(60, 61) == [26214, 1], _duties(60, 61))
    ents = entities.Entities([cfg], hw_sim, {"f": {"on": True, "percentage": 0}})
    expect(ents.full_state()["f"]["on"] is False and _duties(60, 61) == [0, 0], "bad saved")
    cfg["restore"] = "on"
    ents = entities.Entities([cfg], hw_sim, saved)
    expect(ents.restorable() is None, "restore on saves nothing")
    return ents.full_state()["f"]["percentage"] == 100 and _duties(60, 61) == [65535, 0]


class _Clock:
    """actuators' clock for the cover checks: commands read now, poll(now) gets it."""

    now = 0

    def ticks_ms():
        return _Clock.now

    ticks_add = time.ticks_add
    ticks_diff = time.ticks_diff


def _cover(saved=None, **fields):
    fields.setdefault("open_pin", 70)
    fields.setdefault("close_pin", 71)
    fields.setdefault("open_time", 2)
    fields.setdefault("close_time", 2)
    return actuators.Cover(_ent(kind="cover", **fields), hw_sim, saved)


def _run_cover(c, until, step=20):
    """Poll c every `step` ms up to `until` (ms on _Clock): [(ms, state), ...] of each
    push, and whether both outputs were ever on together."""
    pushes = []
    both = False
    while _Clock.now < until:
        _Clock.now += step
        if c.poll(_Clock.now):
            pushes.append((_Clock.now, c.state()))
        both = both or (hw_sim.PINS["70"] == 1 and hw_sim.PINS["71"] == 1)
    return pushes, both


def _with_clock(fn):
    def run():
        actuators.time = _Clock
        _Clock.now = 0
        try:
            return fn()
        finally:
            actuators.time = time

    return run


def _outs():
    return (hw_sim.PINS["70"], hw_sim.PINS["71"])


@check("cover open from an unknown position runs the whole travel")
@_with_clock
def _():
    c = _cover()
    expect(c.describe() == {"key": "e", "kind": "cover", "name": "E"}, c.describe())
    expect(c.state() == {"position": None, "motion": "idle"} and _outs() == (0, 0), "boot")
    r = c.command("set_position", {"position": 40})
    expect(r == entities.POSITION_UNKNOWN, r)
    expect(c.command("open", {}) is None and _outs() == (1, 0), "open output on")
    expect(c.state() == {"position": None, "motion": "opening"}, c.state())
    pushes, _ = _run_cover(c, 2500)
    # Once a second while moving, then at the end: known now.
    expect([ms for ms, _ in pushes] == [1000, 2000], pushes)
    expect(pushes[0][1] == {"position": None, "motion": "opening"}, pushes)
    expect(pushes[1][1] == {"position": 100, "motion": "idle"}, pushes)
    expect(_outs() == (0, 0) and c.keep() == 100, "stopped at the end")
    expect(c.command("open", {}) is None and _outs() == (0, 0), "already open: no motion")
    expect(c.state()["motion"] == "idle", c.state())
    _Clock.now = 0
    close = _cover(open_time=1, close_time=3.5)
    close.command("close", {})
    expect(_outs() == (0, 1), "close output on")
    pushes, _ = _run_cover(close, 4000)
    expect(pushes[-1] == (3500, {"position": 0, "motion": "idle"}), pushes)
    expect(close.command("set_position", {"position": 50}) is None, "set_position")
    pushes, _ = _run_cover(close, 4500)  # open_time 1 s: 50 % in 500 ms
    return pushes == [(4500, {"position": 50, "motion": "idle"})] and _outs() == (0, 0)


@check("cover stops at its target and keeps a stopped position")
@_with_clock
def _():
    c = _cover(100, restore="last")
    expect(c.state() == {"position": 100, "motion": "idle"}, c.state())
    expect(c.command("set_position", {"position": 50}) is None and _outs() == (0, 1), "close")
    expect(c.state() == {"position": 100, "motion": "closing"}, c.state())
    expect(c.keep() == 100, "kept until it stops")
    pushes, both = _run_cover(c, 1500)
    expect(pushes == [(1000, {"position": 50, "motion": "idle"})], pushes)
    expect(_outs() == (0, 0) and c.keep() == 50 and not both, "stopped at 50")
    c.command("close", {})
    _run_cover(c, 2100)  # 600 ms of a 2 s travel: 30 %
    expect(c.command("stop", {}) is None and _outs() == (0, 0), "stop")
    expect(c.state() == {"position": 20, "motion": "idle"} and c.keep() == 20, c.state())
    pushes, _ = _run_cover(c, 3000)
    expect(pushes == [], "no pushes while idle")
    c.command("set_position", {"position": 20})
    expect(c.state()["motion"] == "idle" and _outs() == (0, 0), "already there")
    # Moving, then a target it is at: stops there.
    c.command("open", {})
    _run_cover(c, 3200)
    expect(c.command("set_position", {"position": 30}) is None, c.state())
    expect(c.state() == {"position": 30, "motion": "idle"} and _outs() == (0, 0), c.state())
    # A stop while the position is unknown leaves it unknown.
    u = _cover(open_pin=72, close_pin=73)
    u.command("close", {})
    _Clock.now += 700
    u.poll(_Clock.now)
    u.command("stop", {})
    expect(u.state() == {"position": None, "motion": "idle"} and u.keep() is None, u.state())
    return u.command("set_position", {"position": 0}) == entities.POSITION_UNKNOWN


@check("cover interlock: the two outputs are never on together")
@_with_clock
def _():
    c = _cover(50, interlock_ms=250)
    c.command("open", {})
    _run_cover(c, 500)  # at 75 %
    expect(c.command("close", {}) is None, "reverse")
    # The open output off at once, the close one only after 250 ms.
    expect(_outs() == (0, 0) and c.state() == {"position": 75, "motion": "closing"}, c.state())
    samples = []
    while _Clock.now < 740:
        _Clock.now += 20
        c.poll(_Clock.now)
        samples.append(_outs())
    expect(samples[-1] == (0, 0) and set(samples) == {(0, 0)}, samples)
    _Clock.now = 760
    c.poll(_Clock.now)
    expect(_outs() == (0, 1), "on after the interlock: %r" % (_outs(),))
    expect(c.state()["position"] == 75, "no travel while waiting: %r" % c.state())
    pushes, both = _run_cover(c, 3000)
    expect(pushes[-1][1] == {"position": 0, "motion": "idle"} and not both, pushes)
    expect(pushes[-1][0] == 2260, "1.5 s of travel from 760: %r" % pushes)
    # Not a reversal: after a stop, or at the end, the other output goes on at once.
    expect(c.command("open", {}) is None and _outs() == (1, 0), "open right after the end")
    _run_cover(c, 3400)  # 20 %
    c.command("stop", {})
    expect(c.command("close", {}) is None and _outs() == (0, 1), "close right after a stop")
    _run_cover(c, 3600)  # 10 %
    # Reversed again while waiting: the output that went off may go on at once (the
    # other never went on).
    c.command("open", {})
    expect(_outs() == (0, 0), "waiting")
    c.command("close", {})
    expect(_outs() == (0, 1), "back to close at once")
    # A stop while waiting, and the reversal again: only the rest of the wait is left.
    _Clock.now = 3700
    c.command("open", {})  # the close output off at 3700
    _Clock.now = 3800
    c.command("stop", {})
    expect(_outs() == (0, 0) and c.state()["motion"] == "idle", c.state())
    _Clock.now = 3850
    c.command("open", {})
    expect(_outs() == (0, 0), "still within the interlock")
    _Clock.now = 3940
    c.poll(3940)
    expect(_outs() == (0, 0), "still within the interlock at 240 ms")
    _Clock.now = 3960
    c.poll(3960)
    expect(_outs() == (1, 0), "on 250 ms after the close output went off")
    zero = _cover(50, interlock_ms=0)
    zero.command("open", {})
    zero.command("close", {})
    return _outs() == (0, 1)


@check("cover restore")
@_with_clock
def _():
    cfg = _ent(kind="cover", key="c", open_pin=70, close_pin=71, open_time=2, close_time=2)
    expect(cfg["restore"] == "last" and cfg["interlock_ms"] == 250, cfg)
    for saved, position in ((37, 37), (0, 0), (None, None), (101, None), (True, None)):
        ents = entities.Entities([cfg], hw_sim, {"c": saved})
        expect(ents.full_state()["c"] == {"position": position, "motion": "idle"}, saved)
        expect(_outs() == (0, 0), "outputs off at boot")
    ents = entities.Entities([cfg], hw_sim, {"c": 10})
    ents.command("c", "open", {})  # 1.8 s to 100
    _Clock.now = 300
    expect(ents.poll(300) == [] and ents.restorable() == {"c": 10}, "kept while moving")
    _Clock.now = 1300
    expect(ents.poll(1300) == ["c"] and ents.restorable() == {"c": 10}, "a push while moving")
    expect(ents.full_state()["c"] == {"position": 75, "motion": "opening"}, ents.full_state())
    expect(ents.restores(["c"]) and not ents.restores(["x"]), "restores")
    _Clock.now = 1800
    expect(ents.poll(1800) == ["c"] and ents.restorable() == {"c": 100}, ents.restorable())
    cfg["restore"] = "off"
    ents = entities.Entities([cfg], hw_sim, {"c": 37})
    expect(ents.restorable() is None and not ents.restores(["c"]), "restore off")
    return ents.full_state()["c"]["position"] is None


# ------------------------------------------------------------ health sources


@check("health sources")
def _():
    from homeseal import health

    up = entities.Sensor(_ent(kind="sensor", source="uptime", interval=1), hw_sim)
    expect(type(up.state()) is int and up.state() >= 0, up.state())
    # 2.5 s more on its clock: 2 more whole seconds, the half second carried.
    before = health.uptime()
    health._last = time.ticks_add(health._last, -2500)
    expect(health.uptime() == before + 2, health.uptime())
    health._last = time.ticks_add(health._last, -600)
    expect(health.uptime() == before + 3, "the carried half second counts")
    heap = entities.Sensor(_ent(kind="sensor", source="free_heap"), hw_sim)
    expect(type(heap.state()) is int and heap.state() > 0, heap.state())
    counted = health.connects
    try:
        rc = entities.Sensor(_ent(kind="sensor", source="reconnects", interval=1), hw_sim)
        got = []
        for n in (0, 1, 2, 5):
            health.connects = n
            rc._read()
            got.append(rc.state())
        expect(got == [0, 0, 1, 4], got)
    finally:
        health.connects = counted
    ws_ = entities.Sensor(_ent(kind="sensor", source="wifi_signal", interval=1), hw_sim)
    expect(ws_.state() == -60, "the sim's default: %r" % ws_.state())
    expect(hw_sim._handle({"op": "set", "pin": "rssi", "value": -71})["ok"], "set rssi")
    t0 = time.ticks_ms()
    expect(ws_.poll(t0) is False and ws_.poll(time.ticks_add(t0, 1000)), "read each second")
    expect(ws_.state() == -71, ws_.state())
    expect(hw_sim._handle({"op": "set", "pin": "rssi", "value": None})["ok"], "no link")
    expect(ws_._read() and ws_.state() is None, "no signal: unknown")
    for bad in (1, -128, "-60", -60.5):
        expect(not hw_sim._handle({"op": "set", "pin": "rssi", "value": bad})["ok"], bad)
    hw_sim.PINS["rssi"] = -60
    return True


@check("health source defaults")
def _():
    want = {
        "uptime": ("duration", "s", "total_increasing", True),
        "free_heap": ("data_size", "B", "measurement", True),
        "reconnects": (None, None, "total_increasing", False),
        "wifi_signal": ("signal_strength", "dBm", "measurement", True),
    }
    for src, (dc, unit, sc, disabled) in want.items():
        cfg = _ent(kind="sensor", source=src)
        got = (cfg["device_class"], cfg["unit"], cfg["state_class"], cfg["disabled_by_default"])
        expect(got == (dc, unit, sc, disabled) and cfg["category"] == "diagnostic", cfg)
        expect(cfg["pin"] is None and cfg["scale"] is None, cfg)
        d = entities.Sensor(cfg, hw_sim).describe()
        expect(d["category"] == "diagnostic" and d.get("disabled_by_default", False) is disabled, d)
        expect(d.get("unit") == unit and d.get("device_class") == dc, d)
    # What the config names wins; null makes a primary entity.
    cfg = _ent(kind="sensor", source="uptime", unit="min", state_class="measurement",
               disabled_by_default=False, category=None)  # fmt: skip
    got = (cfg["unit"], cfg["state_class"], cfg["device_class"], cfg["disabled_by_default"])
    expect(got == ("min", "measurement", "duration", False) and cfg["category"] is None, cfg)
    expect(_ent(kind="text_sensor", source="restart_reason")["category"] == "diagnostic", "rr")
    expect(_ent(kind="text_sensor", source="ip")["category"] is None, "ip is not defaulted")
    adc = _ent(kind="sensor", pin=3)
    return adc["category"] is None and not adc["disabled_by_default"] and adc["unit"] is None


# ------------------------------------------------------------ session limits


@check("session decrypt")
def _():
    s = session.Session(b"C" * 10, noise.CipherState(bytes(32)), noise.CipherState(bytes(32)))
    return s.decrypt(noise.CipherState(bytes(32)).encrypt_with_ad(b"", b"hi")) == b"hi"


@check("session rx limit")
def _():
    c2 = noise.CipherState(bytes(32))
    s = session.Session(b"C" * 10, noise.CipherState(bytes(32)), c2)
    c2.n = session.MAX_MESSAGES
    return raises(session.LimitReached, s.decrypt, bytes(20))


@check("session tx limit")
def _():
    c1 = noise.CipherState(bytes(32))
    s = session.Session(b"C" * 10, c1, noise.CipherState(bytes(32)))
    c1.n = session.MAX_MESSAGES
    return raises(session.LimitReached, s.encrypt, b"x")


@check("session age limit")
def _():
    s = session.Session(b"C" * 10, noise.CipherState(bytes(32)), noise.CipherState(bytes(32)))
    s._t0 = time.ticks_add(time.ticks_ms(), -session.MAX_AGE_MS)
    return raises(session.LimitReached, s.encrypt, b"x")


@check("handshake length")
def _():
    return raises(ValueError, session.respond, None, None, b"", b"", bytes(47))


# ------------------------------------------------------------ the session responder
# The controller is the firmware's own Noise initiator; the wire bytes are the
# ones PROTOCOL.md §6 gives (kind 0x01..0x04, RESET reasons 1..6).

DEV = noise.generate_keypair()
CTL = noise.generate_keypair()
DEV_ID = b"D" * 10
CTL_ID = b"C" * 10
OTHER_ID = b"O" * 10
PING = b'{"t":"ping","id":1}'
CTL_ID_REAL = ids.endpoint_id(CTL[1])


def _logs():
    out = []
    return out, out.append


def _responder(log=None, precompute=True):
    r = session.Responder(DEV, DEV_ID, log or (lambda m: None))
    r.pin(CTL_ID, CTL[1])
    while precompute and r.precompute():
        pass
    return r


def _initiator():
    hs = noise.HandshakeState(
        session.PROTOCOL_NAME, True, session.PROLOGUE + DEV_ID + CTL_ID, s=CTL, rs=DEV[1]
    )
    return hs, b"\x01" + hs.write_message(b"")


def _handshake(r, hs1=None):
    """HANDSHAKE1 to r and its HANDSHAKE2: the controller's (send, receive)."""
    hs, msg = _initiator()
    reply, message, opened = r.receive(CTL_ID, hs1 or msg)
    expect(not opened and message is None, "opened by HANDSHAKE1")
    expect(reply[0] == 0x02 and len(reply) == 49, "no HANDSHAKE2: %r" % reply)
    expect(hs.read_message(reply[1:]) == b"", "HANDSHAKE2 payload")
    return hs.transport()


def _open(r):
    """A controller's (send, receive) CipherStates for a new session with r,
    confirmed by a first ping (§6)."""
    send, recv = _handshake(r)
    out = r.receive(CTL_ID, b"\x03" + send.encrypt_with_ad(b"", PING))
    expect(out == (None, PING, True), "the first message did not open it: %r" % (out,))
    return send, recv


@check("responder precompute")
def _():
    r = session.Responder(DEV, DEV_ID, lambda m: None)
    expect(not r.precompute(), "work without a controller")
    r.pin(CTL_ID, CTL[1])
    expect(r.precompute() and r._e is not None and r._ss is None, "the ephemeral key first")
    expect(r.precompute() and r._ss == noise.static_dh(DEV, CTL[1]), "then DH(s, rs)")
    expect(not r.precompute(), "work left after both")
    return True


@check("responder handshake uses the pre-generated e")
def _():
    r = _responder()
    e_pub = r._e[1]
    reply, _, _ = r.receive(CTL_ID, _initiator()[1])
    # HANDSHAKE2 is `e, ee, se`: its first 32 bytes are the responder's e.
    return reply[1:33] == e_pub and r._e is None and r._pending is not None


@check("responder handshake uses the cached ss")
def _():
    r = _responder()
    r._ss = bytes(32)  # not DH(s, rs): a handshake that used it cannot succeed
    e = r._e
    reply, _, opened = r.receive(CTL_ID, _initiator()[1])
    # A failed HANDSHAKE1 never used e (no HANDSHAKE2 was written): it is kept.
    return not opened and reply == b"\x04\x02" and r._e is e and r._pending is None


@check("responder handshake without precomputation")
def _():
    _open(_responder(precompute=False))
    return True


@check("responder transport both ways")
def _():
    r = _responder()
    send, recv = _open(r)
    ping2 = b'{"t":"ping","id":2}'
    reply, message, opened = r.receive(CTL_ID, b"\x03" + send.encrypt_with_ad(b"", ping2))
    expect((reply, message, opened) == (None, ping2, False), "controller -> device")
    out = r.seal(b'{"t":"pong","id":1}')
    expect(out[0] == 0x03, "TRANSPORT kind")
    return recv.decrypt_with_ad(b"", out[1:]) == b'{"t":"pong","id":1}'


@check("responder bad HANDSHAKE1 keeps the session")
def _():
    logs, log = _logs()
    r = _responder(log)
    send, _ = _open(r)
    for bad in (b"\x01" + os.urandom(48), b"\x01" + bytes(47), b"\x01"):
        reply, message, opened = r.receive(CTL_ID, bad)
        expect((reply, message, opened) == (b"\x04\x02", None, False), "reply %r" % reply)
    expect(r.is_open and "handshake failed" in logs, "session or log")
    _, message, _ = r.receive(CTL_ID, b"\x03" + send.encrypt_with_ad(b"", PING))
    return message == PING


@check("responder new handshake replaces the session")
def _():
    r = _responder()
    _open(r)
    r.precompute()
    send, _ = _open(r)
    return r.receive(CTL_ID, b"\x03" + send.encrypt_with_ad(b"", PING))[1] == PING


@check("responder not paired")
def _():
    r = _responder()
    _open(r)
    hs1 = _initiator()[1]
    expect(r.receive(OTHER_ID, hs1) == (b"\x04\x03", None, False), "another controller")
    expect(r.receive(OTHER_ID, b"\x03" + bytes(20)) == (b"\x04\x03", None, False), "its TRANSPORT")
    unpaired = session.Responder(DEV, DEV_ID, lambda m: None)
    expect(unpaired.receive(CTL_ID, hs1) == (b"\x04\x03", None, False), "an unpaired device")
    return r.is_open


@check("responder RESET only logged")
def _():
    logs, log = _logs()
    r = _responder(log)
    _open(r)
    out = r.receive(CTL_ID, b"\x04\x01")
    return (
        out == (None, None, False)
        and r.is_open
        and logs[-1] == "session reset by controller (ignored)"
    )


@check("responder unknown kind and empty payload")
def _():
    r = _responder()
    _open(r)
    expect(r.receive(CTL_ID, b"\x09abc") == (b"\x04\x05", None, False), "unknown kind")
    expect(r.receive(CTL_ID, b"") == (b"\x04\x05", None, False), "empty")
    expect(r.receive(OTHER_ID, b"") == (b"\x04\x05", None, False), "empty, from anyone")
    return r.is_open


@check("responder no session")
def _():
    return _responder().receive(CTL_ID, b"\x03" + bytes(40)) == (b"\x04\x01", None, False)


@check("responder decrypt failure ends the session")
def _():
    logs, log = _logs()
    r = _responder(log)
    send, _ = _open(r)
    good = send.encrypt_with_ad(b"", PING)
    flipped = bytearray(send.encrypt_with_ad(b"", PING))
    flipped[3] ^= 1
    expect(r.receive(CTL_ID, b"\x03" + flipped) == (b"\x04\x06", None, False), "flipped bit")
    expect(not r.is_open and logs[-1] == "session closed: decrypt failed", "closed")
    return r.receive(CTL_ID, b"\x03" + good) == (b"\x04\x01", None, False)


@check("responder protocol error ends the session")
def _():
    logs, log = _logs()
    r = _responder(log)
    _open(r)
    out = r.protocol_error("unknown type")
    return (
        out == b"\x04\x05"
        and not r.is_open
        and logs[-1] == "session closed: protocol error: unknown type"
    )


@check("responder limits")
def _():
    logs, log = _logs()
    r = _responder(log)
    send, _ = _open(r)
    r._session._rx.n = session.MAX_MESSAGES
    out = r.receive(CTL_ID, b"\x03" + send.encrypt_with_ad(b"", PING))
    expect(out == (b"\x04\x04", None, False) and not r.is_open, "receive limit")
    r.precompute()
    _open(r)
    r._session._tx.n = session.MAX_MESSAGES
    expect(r.seal(PING) == b"\x04\x04" and not r.is_open, "send limit")
    expect(logs[-1] == "session closed: limit reached", "log")
    return r.seal(PING) is None


@check("responder pin ends the session")
def _():
    r = _responder()
    _open(r)
    r.pin(None, None)
    expect(not r.is_open and r.peer is None and r._e is None and not r.precompute(), "unpinned")
    return r.receive(CTL_ID, _initiator()[1]) == (b"\x04\x03", None, False)


def _ct(send, msg=PING):
    return b"\x03" + send.encrypt_with_ad(b"", msg)


@check("l2 replayed HANDSHAKE1 keeps the live session")
def _():
    r = _responder()
    hs, hs1 = _initiator()
    reply, _, _ = r.receive(CTL_ID, hs1)
    hs.read_message(reply[1:])
    send, recv = hs.transport()
    expect(r.receive(CTL_ID, _ct(send)) == (None, PING, True), "first message")
    # The same HANDSHAKE1 again (a relay or a link attacker): a pending session
    # and its HANDSHAKE2, nothing more.
    r.precompute()
    reply, message, opened = r.receive(CTL_ID, hs1)
    expect(reply[0] == 0x02 and message is None and not opened, "answer %r" % reply)
    expect(r.is_open and r._pending is not None, "live session kept")
    for i in range(3):
        expect(r.receive(CTL_ID, _ct(send)) == (None, PING, False), "message %d" % i)
        out = r.seal(b'{"t":"pong","id":1}')
        pong = recv.decrypt_with_ad(b"", out[1:])
        expect(pong == b'{"t":"pong","id":1}', "sealed in the live one")
    return r.is_open


@check("l2 first message under the new keys confirms the handshake")
def _():
    logs, log = _logs()
    r = _responder(log)
    old_send, old_recv = _open(r)
    r.precompute()
    send, recv = _handshake(r)
    # The old session goes on until the new one is confirmed; nothing is
    # sealed in the pending one.
    expect(r.receive(CTL_ID, _ct(old_send)) == (None, PING, False), "old session")
    out = r.seal(PING)
    expect(old_recv.decrypt_with_ad(b"", out[1:]) == PING, "sealed in the old session")
    expect(r.receive(CTL_ID, _ct(send)) == (None, PING, True), "confirmation")
    expect(r._pending is None, "still pending")
    out = r.seal(PING)
    expect(recv.decrypt_with_ad(b"", out[1:]) == PING, "sealed in the new session")
    # The old session is gone: its next message decrypts with neither.
    expect(r.receive(CTL_ID, _ct(old_send)) == (b"\x04\x06", None, False), "old after the switch")
    return not r.is_open and logs[-1] == "session closed: decrypt failed"


@check("l2 nothing is sealed in a pending session")
def _():
    r = _responder()
    _handshake(r)
    return not r.is_open and r.seal(PING) is None and r._pending is not None


@check("l2 a message that decrypts with neither ends both")
def _():
    r = _responder()
    _open(r)
    r.precompute()
    _handshake(r)
    expect(r.receive(CTL_ID, b"\x03" + os.urandom(40)) == (b"\x04\x06", None, False), "reset")
    expect(not r.is_open and r._pending is None, "sessions left")
    # Without an open session, a pending one that the message fails ends too.
    r.precompute()
    _handshake(r)
    expect(r.receive(CTL_ID, b"\x03" + os.urandom(40)) == (b"\x04\x06", None, False), "pending")
    expect(r._pending is None, "pending kept")
    return r.receive(CTL_ID, b"\x03" + bytes(40)) == (b"\x04\x01", None, False)


@check("l2 an unconfirmed handshake is dropped after 15 s or by the next one")
def _():
    logs, log = _logs()
    r = _responder(log)
    send1, _ = _handshake(r)
    r.precompute()
    _handshake(r)
    # The second HANDSHAKE1 replaced the first pending session.
    expect(r.receive(CTL_ID, _ct(send1)) == (b"\x04\x06", None, False), "first one kept")
    r.precompute()
    send3, _ = _handshake(r)
    r._pending._t0 = time.ticks_add(time.ticks_ms(), -15000)
    r.precompute()
    expect(r._pending is None and logs[-1] == "handshake not confirmed", "not dropped")
    return r.receive(CTL_ID, _ct(send3)) == (b"\x04\x01", None, False)


@check("l3 RESET is 0x04 and a reason, nothing more")
def _():
    r = _responder()
    bad = r.receive(CTL_ID, b"\x01" + os.urandom(48))[0]
    short = r.receive(CTL_ID, b"\x01" + bytes(10))[0]
    other = r.receive(OTHER_ID, b"\x01" + os.urandom(48))[0]
    none = r.receive(CTL_ID, b"\x03" + bytes(40))[0]
    return (bad, short, other, none) == (b"\x04\x02", b"\x04\x02", b"\x04\x03", b"\x04\x01")


class _CountDH:
    """x25519.dh wrapped: counts the DHs with the device's static key."""

    def __enter__(self):
        self.n = 0
        self._dh = x25519.dh

        def dh(priv, pub):
            if bytes(priv) == DEV[0]:
                self.n += 1
            return self._dh(priv, pub)

        x25519.dh = dh
        return self

    def __exit__(self, *exc):
        x25519.dh = self._dh


@check("l4 forged HANDSHAKE1 cost at most the budget's DHs")
def _():
    logs, log = _logs()
    r = _responder(log)
    with _CountDH() as c:
        answers = [r.receive(CTL_ID, b"\x01" + os.urandom(48))[0] for _ in range(100)]
    # 4 answered (one static-key DH each), 96 dropped without a DH or an answer.
    expect(answers[:4] == [b"\x04\x02"] * 4 and answers[4:] == [None] * 96, "answers")
    expect((c.n, r.handshakes, r.dropped) == (4, 4, 96), "%d DHs" % c.n)
    expect(logs.count("HANDSHAKE1 budget spent: dropping them until it refills") == 1, "log")
    # Others' HANDSHAKE1 never cost a DH, budget or not.
    with _CountDH() as c:
        expect(r.receive(OTHER_ID, b"\x01" + os.urandom(48))[0] == b"\x04\x03", "stranger")
    expect(c.n == 0, "a stranger's DH")
    # A genuine handshake waits for the next token: one per 5 s.
    hs, hs1 = _initiator()
    expect(r.receive(CTL_ID, hs1) == (None, None, False), "answered without a token")
    r._refill = time.ticks_add(r._refill, -5000)
    reply, _, _ = r.receive(CTL_ID, hs1)
    hs.read_message(reply[1:])
    send, _ = hs.transport()
    expect(r.receive(CTL_ID, _ct(send)) == (None, PING, True), "genuine handshake")
    # The bucket refills to 4, never more.
    r._refill = time.ticks_add(r._refill, -3600 * 1000)
    with _CountDH() as c:
        for _ in range(10):
            r.receive(CTL_ID, b"\x01" + os.urandom(48))
    return c.n == 4


# ------------------------------------------------------------ pairing, sans-IO
# A provisioning record with w0 = 0x11..11 and L = w1·P for w1 = 0x44..44
# (computed with the client's P-256). A PAKE1 whose shareP is no point fails
# (bad_message) after it was counted.

L_HEX = (
    "045b36890dacbd7c9a96bb74a1ee28b3d2d75b72e09a20ef25cf8e6fd8a9f0350d"
    "0e14bed8d4682a34d83538bdff5b96e89a6666ec0db5745d02fa1210072df75a"
)
PROV = {"version": 1, "w0": "11" * 32, "L": L_HEX, "salt": "33" * 16, "iterations": 1000}
VERIFIER_MODULES = ("homeseal.pairing_window", "homeseal.spake2plus", "homeseal.p256")


def _pairing(failed=None, provisioned=True, attempt_ms=0):
    st = store.Store(STATE_DIR)
    st.remove(store.ATTEMPTS)
    st.remove(store.PROVISIONING)
    if provisioned:
        st.write(store.PROVISIONING, PROV)
    logs = []
    paired = []
    p = pairing.Pairing(
        st, DEV_ID, DEV[1], failed or 0, lambda *a: paired.append(a), logs.append, 60000, attempt_ms
    )
    return p, st, logs


def _frames(p, ftype, payload, paired=False, peer=CTL_ID):
    return [(f[0], f[1], bytes(f[2])) for f in p.handle(ftype, peer, memoryview(payload), paired)]


def _error(code, left, peer=CTL_ID):
    return [(envelope.PAIR, peer, bytes((0x7F, code, left)))]


def _loaded():
    return [m for m in VERIFIER_MODULES if m in sys.modules]


def _boot_state(ident=True, button=True, power_on=True, **records):
    """bootstate.load() on a state directory holding the given records; an
    identity (without its mark unless ident == "made") first."""
    st = store.Store(STATE_DIR)
    for name in (store.IDENTITY, store.ATTEMPTS, store.PAIRING, store.PROVISIONING):
        st.remove(name)
    if ident:
        rec = {"version": 1, "private_key": DEV[0].hex(), "public_key": DEV[1].hex()}
        if ident == "made":
            rec["state_files"] = True
        st.write(store.IDENTITY, rec)
    for name, rec in records.items():
        st.write(name + ".json", rec)
    logs = []
    out = bootstate.load(store.Store(STATE_DIR), button, power_on, logs.append)
    return out, store.Store(STATE_DIR), logs


@check(
    "bootstate counter from attempts.json",
    cases=(("none", None, 0), ("3", 3, 3), ("bad", "x", 20), ("high", 99, 20), ("max", 20, 20)),
)
def _(stored, failed):
    kw = {} if stored is None else {"attempts": {"failed": stored}}
    out, st, _ = _boot_state(**kw)
    return out[5] == failed and st.read(store.ATTEMPTS) == {"failed": failed}


@check("pairing reset_counter")
def _():
    p, st, _ = _pairing(7)
    p.reset_counter()
    return p.failed == 0 and st.read(store.ATTEMPTS) == {"failed": 0}


@check("pairing paired device")
def _():
    p, _, _ = _pairing(2)
    for ftype, payload in (
        (envelope.PAIR_START, b"\x01\x01"),
        (envelope.PAIR, b"\x03" + bytes(65)),
        (envelope.PAIR, b""),
    ):
        expect(
            _frames(p, ftype, payload, True) == _error(1, 18), "not_in_pairing_mode %r" % payload
        )
    expect(_frames(p, envelope.PAIR, b"\x7f\x02\x05", True) == [], "a PAIR_ERROR is not answered")
    return _loaded() == []


@check("pairing window loads and drops the verifier")
def _():
    p, _, logs = _pairing()
    expect(_loaded() == [], "loaded before the window opened")
    p.open_window()
    expect(p.window_open and _loaded() == list(VERIFIER_MODULES), "not loaded: %r" % _loaded())
    expect(logs[-1] == "pairing window open attempts_left=20", "log")
    p.close_window("test")
    return not p.window_open and _loaded() == [] and logs[-1] == "pairing window closed: test"


@check("pairing unprovisioned")
def _():
    p, _, logs = _pairing(provisioned=False)
    p.open_window()
    expect(not p.window_open and logs[-1] == "pairing unavailable: not provisioned", "window")
    return _frames(p, envelope.PAIR_START, b"\x01\x01") == _error(1, 20)


@check("pairing params response")
def _():
    p, _, _ = _pairing(1)
    p.open_window()
    out = _frames(p, envelope.PAIR_START, b"\x01\x01")
    p.close_window("test")
    return out == [(envelope.PAIR, CTL_ID, b"\x02\x00\x00\x03\xe8\x10" + b"\x33" * 16 + b"\x13")]


@check(
    "pairing bad PAIR_START",
    cases=(
        ("type", b"\x03\x01", 5),
        ("length", b"\x01\x01\x00", 5),
        ("empty", b"", 5),
        ("version", b"\x01\x02", 7),
    ),
)
def _(payload, code):
    p, _, _ = _pairing()
    p.open_window()
    out = _frames(p, envelope.PAIR_START, payload)
    p.close_window("test")
    return out == _error(code, 20)


@check("pairing counts PAKE1 before answering")
def _():
    p, st, _ = _pairing()
    p.open_window()
    _frames(p, envelope.PAIR_START, b"\x01\x01")
    out = _frames(p, envelope.PAIR, b"\x03\x04" + bytes(64))  # not on the curve
    expect(out == _error(5, 19), "bad_message %r" % out)
    p.close_window("test")
    return st.read(store.ATTEMPTS) == {"failed": 1}


@check("pairing busy")
def _():
    p, _, _ = _pairing()
    p.open_window()
    _frames(p, envelope.PAIR_START, b"\x01\x01")
    expect(
        _frames(p, envelope.PAIR_START, b"\x01\x01", peer=OTHER_ID) == _error(4, 20, OTHER_ID),
        "PAIR_START",
    )
    expect(
        _frames(p, envelope.PAIR, b"\x03" + bytes(65), peer=OTHER_ID) == _error(4, 20, OTHER_ID),
        "PAIR",
    )
    expect(_frames(p, envelope.PAIR, b"\x7f\x01\x00", peer=OTHER_ID) == [], "PAIR_ERROR")
    p.close_window("test")
    return True


@check("pairing out of order")
def _():
    p, _, _ = _pairing()
    p.open_window()
    expect(
        _frames(p, envelope.PAIR, b"\x03" + bytes(65)) == _error(5, 20), "PAKE1 without an attempt"
    )
    _frames(p, envelope.PAIR_START, b"\x01\x01")
    expect(_frames(p, envelope.PAIR, b"\x05" + bytes(80)) == _error(5, 20), "PAKE3 before PAKE1")
    expect(_frames(p, envelope.PAIR, b"\x03" + bytes(65)) == _error(5, 20), "the attempt ended")
    p.close_window("test")
    return True


@check("pairing closed window and lockout")
def _():
    p, _, _ = _pairing(20)
    p.open_window()
    expect(not p.window_open, "opened at the limit")
    expect(_frames(p, envelope.PAIR_START, b"\x01\x01") == _error(3, 0), "locked_out")
    expect(
        _frames(p, envelope.PAIR, b"\x03" + bytes(65)) == _error(1, 0), "PAIR: not_in_pairing_mode"
    )
    p, _, _ = _pairing(19)
    p.open_window()
    p.close_window("test")
    return _frames(p, envelope.PAIR_START, b"\x01\x01") == _error(1, 1)


@check("pairing the last attempt closes the window")
def _():
    p, st, logs = _pairing(19)
    p.open_window()
    _frames(p, envelope.PAIR_START, b"\x01\x01")
    expect(_frames(p, envelope.PAIR, b"\x03\x04" + bytes(64)) == _error(5, 0), "bad_message")
    expect(
        not p.window_open and logs[-1] == "pairing window closed: failed-attempt limit reached",
        "open",
    )
    return st.read(store.ATTEMPTS) == {"failed": 20} and _loaded() == []


@check("pairing window and attempt timeouts")
def _():
    p, _, logs = _pairing()
    p.open_window()
    _frames(p, envelope.PAIR_START, b"\x01\x01")
    now = time.ticks_ms()
    p.tick(time.ticks_add(now, 31000))
    expect(p.window_open and logs[-1] == "pairing attempt abandoned (timeout)", "attempt")
    p.tick(time.ticks_add(now, 61000))
    return not p.window_open and logs[-1] == "pairing window closed: timeout" and _loaded() == []


# L1: one attempt slot, at most ATTEMPT_MS from its PAIR_START whatever its
# holder does; the first controller refused busy gets the next slot.
STRANGER = b"S" * 10
START = b"\x01\x01"


def _expire(p):
    p._window._until = time.ticks_add(time.ticks_ms(), -1)


@check("l1 a restart by the holder does not renew its slot")
def _():
    p, _, _ = _pairing()
    p.open_window()
    w = p._window
    expect(_frames(p, envelope.PAIR_START, START, peer=STRANGER)[0][2][0] == 0x02, "params")
    until = w._until
    time.sleep_ms(5)
    for _ in range(5):
        expect(_frames(p, envelope.PAIR_START, START, peer=STRANGER)[0][2][0] == 0x02, "restart")
    expect(w._until == until, "the slot was renewed")
    expect(time.ticks_diff(until, time.ticks_ms()) <= 30000, "slot length")  # ATTEMPT_MS
    _expire(p)
    # Its time is up: the next PAIR_START from anyone takes a fresh slot.
    expect(_frames(p, envelope.PAIR_START, START)[0][2][0] == 0x02, "the owner")
    p.close_window("test")
    return True


@check("l1 a restart after PAKE1 counts as a failed attempt")
def _():
    p, st, _ = _pairing()
    p.open_window()
    _frames(p, envelope.PAIR_START, START, peer=STRANGER)
    # A valid point (L itself): PAKE2 comes back, the attempt is counted.
    out = _frames(p, envelope.PAIR, b"\x03" + bytes.fromhex(L_HEX), peer=STRANGER)
    expect(out[0][2][0] == 0x04, "PAKE2 %r" % out)
    out = _frames(p, envelope.PAIR_START, START, peer=STRANGER)
    expect(out[0][2][-1] == 19, "attempts_left %r" % out)
    p.close_window("test")
    return p.failed == 1 and st.read(store.ATTEMPTS) == {"failed": 1}


@check("l1 the controller refused busy gets the next slot")
def _():
    p, _, logs = _pairing()
    p.open_window()
    _frames(p, envelope.PAIR_START, START, peer=STRANGER)
    expect(_frames(p, envelope.PAIR_START, START) == _error(4, 20), "owner not busy")
    # The stranger keeps restarting; then its slot ends (time, a failure, its
    # PAIR_ERROR): the next slot is the owner's, the stranger gets busy.
    for _ in range(20):
        _frames(p, envelope.PAIR_START, START, peer=STRANGER)
    _expire(p)
    expect(
        _frames(p, envelope.PAIR_START, START, peer=STRANGER) == _error(4, 20, STRANGER),
        "the stranger took the owner's slot",
    )
    expect(logs[-1] == "pairing attempt abandoned (timeout)", "log %r" % logs[-1])
    expect(_frames(p, envelope.PAIR_START, START)[0][2][0] == 0x02, "the owner's turn")
    # The owner's slot runs; the stranger, refused, is next after it.
    _frames(p, envelope.PAIR, b"\x7f\x02\x14")  # the owner gives up
    expect(_frames(p, envelope.PAIR_START, START) == _error(4, 20), "the stranger's turn")
    expect(_frames(p, envelope.PAIR_START, START, peer=STRANGER)[0][2][0] == 0x02, "stranger")
    p.close_window("test")
    return True


@check("l1 a kept slot nobody fills ends after ATTEMPT_MS")
def _():
    p, _, _ = _pairing()
    p.open_window()
    _frames(p, envelope.PAIR_START, START, peer=STRANGER)
    _frames(p, envelope.PAIR_START, START)  # busy: the owner is next
    _frames(p, envelope.PAIR, b"\x7f\x02\x14", peer=STRANGER)
    w = p._window
    expect(w._peer == CTL_ID and w._stage == 0, "kept for the owner")
    expect(_frames(p, envelope.PAIR_START, START, peer=STRANGER) == _error(4, 20, STRANGER), "busy")
    _expire(p)
    # The owner never came: the stranger (refused meanwhile) has the next slot.
    expect(_frames(p, envelope.PAIR_START, START) == _error(4, 20), "owner after its slot")
    expect(_frames(p, envelope.PAIR_START, START, peer=STRANGER)[0][2][0] == 0x02, "stranger")
    p.close_window("test")
    return True


@check("l1 strangers taking turns cannot keep the owner out")
def _():
    # Two stranger ids, each refused while the other holds the slot (so always
    # next), the owner refused after them each time: the first stranger's
    # slot, the second's, then the owner's -- it has not had one yet.
    p, _, _ = _pairing()
    p.open_window()
    other = b"T" * 10
    holder, waiting = STRANGER, other
    _frames(p, envelope.PAIR_START, START, peer=holder)
    for turn in range(2):
        expect(_frames(p, envelope.PAIR_START, START, peer=waiting)[0][2][1] == 4, "busy")
        expect(_frames(p, envelope.PAIR_START, START) == _error(4, 20), "owner %d" % turn)
        _expire(p)
        p.tick(time.ticks_ms())
        if turn == 0:
            expect(p._window._peer == waiting, "the second stranger's slot")
            _frames(p, envelope.PAIR_START, START, peer=waiting)
            holder, waiting = waiting, holder
    expect(p._window._peer == CTL_ID, "the owner waited more than two slots")
    expect(_frames(p, envelope.PAIR_START, START)[0][2][0] == 0x02, "the owner's turn")
    p.close_window("test")
    return True


@check("l1 test knob: a shorter attempt slot")
def _():
    p, _, _ = _pairing(attempt_ms=2000)
    p.open_window()
    _frames(p, envelope.PAIR_START, START)
    left = time.ticks_diff(p._window._until, time.ticks_ms())
    p.close_window("test")
    return 1900 < left <= 2000


# ------------------------------------------------------------ L5: state records


def _slots(name):
    out = []
    for suffix in ("", ".b", ".tmp"):
        try:
            with open(STATE_DIR + "/" + name + suffix) as f:
                out.append(f.read())
        except OSError:
            out.append(None)
    return out


def _put(name, text):
    with open(STATE_DIR + "/" + name, "w") as f:
        f.write(text)


@check("l5 records alternate between two slots with a seq and a sum")
def _():
    st = store.Store(STATE_DIR)
    st.remove("r.json")
    for n in range(1, 6):
        st.write("r.json", {"n": n})
        expect(store.Store(STATE_DIR).read("r.json") == {"n": n}, "read back %d" % n)
    a, b, _ = _slots("r.json")
    expect('"seq": 5' in a and '"seq": 4' in b, "slots %r %r" % (a, b))
    expect(a.endswith('"}') and ', "sum": "' in a, "sum %r" % a)
    # A flipped byte in the newest slot: the other one is read.
    _put("r.json", a.replace('"n": 5', '"n": 6'))
    expect(store.Store(STATE_DIR).read("r.json") == {"n": 4}, "corrupt newest")
    # A truncated one, the same.
    _put("r.json", a[:20])
    expect(store.Store(STATE_DIR).read("r.json") == {"n": 4}, "truncated newest")
    # The next write goes to the invalid slot, with seq 5 again (4 + 1).
    st = store.Store(STATE_DIR)
    st.read("r.json")
    st.write("r.json", {"n": 7})
    a, b, _ = _slots("r.json")
    return '"n": 7' in a and '"seq": 5' in a and store.Store(STATE_DIR).read("r.json") == {"n": 7}


@check("l5 a record whose first write was cut reads as never written")
def _():
    st = store.Store(STATE_DIR)
    st.remove("r.json")
    _put("r.json", '{"n": 1, "se')
    expect(store.Store(STATE_DIR).read("r.json") is None, "first write cut")
    _put("r.json.b", '{"n": 1, "se')
    return raises(store.StoreError, store.Store(STATE_DIR).read, "r.json")


@check("l5 single files of the provisioning tool and older firmware are valid slots")
def _():
    st = store.Store(STATE_DIR)
    st.remove("r.json")
    _put("r.json", '{"n": 1}')
    expect(store.Store(STATE_DIR).read("r.json") == {"n": 1}, "plain file")
    # The older firmware's NAME.tmp: whole, it is the newer one (its rename was cut).
    _put("r.json.tmp", '{"n": 2}')
    st = store.Store(STATE_DIR)
    expect(st.read("r.json") == {"n": 2}, "the .tmp")
    st.write("r.json", {"n": 3})
    expect(_slots("r.json")[2] is None, "the .tmp was not removed")
    expect(store.Store(STATE_DIR).read("r.json") == {"n": 3}, "after the write")
    # A plain file with a seq of its own is no plain file: it needs its sum.
    _put("r.json", '{"n": 1, "seq": 9}')
    st.remove("r.json.b")
    return store.Store(STATE_DIR).read("r.json") is None


def _made_state(**records):
    out, st, logs = _boot_state(ident="made", **records)
    return out, st, logs


@check("l5 first boot writes every record, the key last")
def _():
    st = store.Store(STATE_DIR)
    for name in (store.IDENTITY, store.ATTEMPTS, store.PAIRING):
        st.remove(name)
    logs = []
    out = bootstate.load(st, True, True, logs.append)
    st = store.Store(STATE_DIR)
    ident = st.read(store.IDENTITY)
    expect(ident["state_files"] is True and ident["public_key"] == out[1].hex(), "identity")
    expect(st.read(store.ATTEMPTS) == {"failed": 0}, "counter")
    expect(st.read(store.PAIRING) == {"controller_id": None}, "pairing")
    return out[2:] == (None, None, False, 0) and logs == ["first boot: generated the device key"]


@check("l5 adoption of the provisioning tool's identity")
def _():
    out, st, _ = _boot_state()
    expect(out[:2] == DEV and out[2:] == (None, None, False, 0), "state %r" % (out[2:],))
    expect(st.read(store.IDENTITY)["state_files"] is True, "not marked")
    # The tool's plain identity.json stays where it was (slot NAME), the mark in NAME.b.
    a, b, _ = _slots(store.IDENTITY)
    expect("state_files" not in a and "state_files" in b, "slots")
    expect(st.read(store.ATTEMPTS) == {"failed": 0}, "counter")
    return st.read(store.PAIRING)["controller_id"] is None


@check(
    "l5 a lost or corrupt record fails closed",
    cases=(
        ("counter missing", "attempts", None),
        ("counter corrupt", "attempts", "x"),
        ("counter out of range", "attempts", {"failed": -1}),
        ("pairing missing", "pairing", None),
        ("pairing corrupt", "pairing", "x"),
        ("pairing invalid", "pairing", {"controller_id": "00", "controller_key": "11"}),
    ),
)
def _(which, rec):
    records = {"attempts": {"failed": 2}, "pairing": {"controller_id": None}}
    if rec is None or rec == "x":
        del records[which]
    else:
        records[which] = rec
    st = store.Store(STATE_DIR)
    for name in (store.ATTEMPTS, store.PAIRING):
        st.remove(name)
    if rec == "x":
        _put(which + ".json", "{garbage")
        _put(which + ".json.b", "{garbage")
    out, st, logs = _made_state(**records)
    expect(out[2:] == (None, None, False, 20), "state %r" % (out[2:],))
    expect("lost or corrupt: pairing locked out" in logs[-1], "log %r" % logs)
    expect(st.read(store.ATTEMPTS) == {"failed": 20}, "lockout not recorded")
    return st.read(store.PAIRING) == {"controller_id": None}


@check("l5 a lost pairing record with a button: locked until a long press")
def _():
    out, st, _ = _made_state(attempts={"failed": 0}, provisioning=PROV)
    p = pairing.Pairing(st, DEV_ID, DEV[1], out[5], None, lambda m: None)
    p.open_window()
    expect(not p.window_open, "window open after a lost pairing record")
    p.open_window(reset_counter=True)
    ok = p.window_open
    p.close_window("test")
    return ok


@check(
    "l1 lockout cleared at power-on only without a button, unpaired",
    cases=(
        ("no button", False, True, None, 0),
        ("button", True, True, None, 20),
        ("watchdog reset", False, False, None, 20),
        ("paired", False, True, "paired", 20),
    ),
)
def _(button, power_on, paired, failed):
    pairing_rec = {"controller_id": None}
    if paired:
        pairing_rec = {"controller_id": CTL_ID_REAL.hex(), "controller_key": CTL[1].hex()}
    out, st, logs = _boot_state(
        ident="made", button=button, power_on=power_on, attempts={"failed": 20}, pairing=pairing_rec
    )
    expect(out[5] == failed and st.read(store.ATTEMPTS) == {"failed": failed}, "%r" % (out,))
    cleared = "pairing lockout cleared at power-on (no pairing button)" in logs
    return cleared == (failed == 0)


@check("l1 the power-on clears a lockout once per boot")
def _():
    unpaired = {"controller_id": None}
    out, _, _ = _boot_state(ident="made", button=False, attempts={"failed": 20}, pairing=unpaired)
    expect(out[5] == 0, "not cleared")
    # Locked out again within this boot: only the next boot clears it.
    p = pairing.Pairing(store.Store(STATE_DIR), DEV_ID, DEV[1], 19, None, lambda m: None)
    p.set_failed(20)
    p.open_window()
    expect(not p.window_open, "open within the same boot")
    logs = []
    out = bootstate.load(store.Store(STATE_DIR), False, True, logs.append)
    # A counter below the limit is never reset by a boot.
    p.set_failed(3)
    out2 = bootstate.load(store.Store(STATE_DIR), False, True, logs.append)
    return out[5] == 0 and out2[5] == 3


# ------------------------------------------------------------ CA files: PEM blocks (a chain) or DER


@check("ca pem chain")
def _():
    pem = b"-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n" * 2
    return relay._ca_certs(pem) == [b"\x00\x01\x02", b"\x00\x01\x02"]


@check("ca der")
def _():
    return relay._ca_certs(b"\x30\x82\x01") == [b"\x30\x82\x01"]


# ------------------------------------------------------------ CLAIM/RELEASE authentication (§4.1)
# seq ‖ HMAC(k_ctl, type ‖ peer ‖ seq), values from CPython's hmac; seq beyond
# 2^30 still encodes (31-bit small ints on boards).

K_CTL = bytes(range(32))


@check(
    "control payload",
    cases=(
        ("1", 0x30, 1, "b9f19bd7e9bf27f7714ad62a9a5769d6f9b8c0ca3071c4852877e3ce3ab63dc1"),
        (
            "7f020304",
            0x32,
            0x7F020304,
            "4af31652cfa4e0f71284d65f32cae5f6cb4cd8ece19240597cafb9ed06cb5754",
        ),
        (
            "81020304",
            0x32,
            0x81020304,
            "c8406451332b096e2827a0f87a6a477cc258a1906489b0c9ad98fb30243fdaf5",
        ),
    ),
)
def _(ftype, seq, mac):
    got = relay.control_payload(K_CTL, ftype, b"R" * 10, seq)
    return got == seq.to_bytes(4, "big") + bytes.fromhex(mac)


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
    expect(not await r.send(envelope.CLAIM, b"C" * 10), "sent without a connection")
    r.connected = True
    expect(not await r.send(envelope.CLAIM, b"C" * 10), "sent without k_ctl")
    r._k_ctl = K_CTL
    # Two tasks at once still number their frames in wire order.
    await asyncio.gather(
        r.send(envelope.CLAIM, b"C" * 10, b"ignored"), r.send(envelope.RELEASE, envelope.NO_PEER)
    )
    await r.send(envelope.SESSION, b"C" * 10, b"\x03x")  # not a control frame: unchanged
    await r.send(envelope.RELEASE, envelope.NO_PEER)
    return r.ws.sent


@check("control frames")
def _():
    sent = asyncio.run(_control_sequence())
    expect(len(sent) == 4, "%d frames sent" % len(sent))
    seqs = []
    for hdr, payload in (sent[0], sent[1], sent[3]):
        seq = int.from_bytes(payload[0:4], "big")
        seqs.append(seq)
        expected = relay.control_payload(K_CTL, hdr[0], hdr[1:11], seq)
        expect(payload == expected, "control mac %d" % seq)
    expect(seqs == [1, 2, 3], "seq %r" % seqs)
    return sent[2] == (b"\x20" + b"C" * 10, b"\x03x")  # the session payload untouched


for _name, _fn, _args in _CHECKS:
    try:
        _ok = _fn(*_args)
        _why = "" if _ok is True else "returned %r" % (_ok,)
    except Exception as e:  # each check reports, and the run goes on
        _why = "%s: %s" % (type(e).__name__, e)
    print("ok " + _name if not _why else "FAIL " + _name + ": " + _why)
print("done")
