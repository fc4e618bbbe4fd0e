"""The application-message parser and the relay envelope on the Cortex-M3 port.

Ids up to 2^31 - 1 are beyond a 32-bit board's small ints (31-bit), so they are
heap integers there and small ints on the unix port: both must agree.
"""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from tests.qemu.conftest import RunBoth

pytestmark = [pytest.mark.qemu, pytest.mark.micropython]  # run_both: the board and the unix port

MAX_ID = 2**31 - 1
ERR = "ERR:MessageError"

GOOD = [
    ({"t": "ping", "id": 1}, "[('id', 1), ('t', 'ping')]"),
    ({"t": "pong", "id": MAX_ID}, f"[('id', {MAX_ID}), ('t', 'pong')]"),
    ({"t": "unpair", "id": 7}, "[('id', 7), ('t', 'unpair')]"),
    (
        {"t": "command", "id": 2**30, "key": "lamp", "action": "turn_on", "brightness": 255},
        f"[('action', 'turn_on'), ('brightness', 255), ('id', {2**30}), ('key', 'lamp'), "
        "('t', 'command')]",
    ),
    (
        {"t": "command", "id": 3, "key": "k" * 32, "action": "press"},
        f"[('action', 'press'), ('id', 3), ('key', '{'k' * 32}'), ('t', 'command')]",
    ),
]
BAD: list[bytes] = [
    b"",
    b"not json",
    b"\xff\xfe{}",
    b"[1, 2]",
    b'"ping"',
    b"null",
    b"{}",
    b'{"t": "describe", "id": 1}',  # a device never receives describe
    b'{"t": 1, "id": 1}',
    b'{"t": "ping"}',
    b'{"t": "ping", "id": 0}',
    b'{"t": "ping", "id": -1}',
    b'{"t": "ping", "id": 2147483648}',
    b'{"t": "ping", "id": 99999999999999999999999999}',
    b'{"t": "ping", "id": 1.0}',
    b'{"t": "ping", "id": true}',
    b'{"t": "ping", "id": "1"}',
    b'{"t": "ping", "id": 1, "x": 0}',
    b'{"t": "command", "id": 1, "action": "turn_on"}',
    b'{"t": "command", "id": 1, "key": "", "action": "turn_on"}',
    b'{"t": "command", "id": 1, "key": "' + b"k" * 33 + b'", "action": "turn_on"}',
    b'{"t": "command", "id": 1, "key": "a", "action": "turn_off", "brightness": 3}',
    b'{"t": "command", "id": 1, "key": "a", "action": "turn_on", "brightness": 256}',
    b'{"t": "command", "id": 1, "key": "a", "action": "turn_on", "brightness": -1}',
    b'{"t": "command", "id": 1, "key": ["a"], "action": "turn_on"}',
    b'{"t": "ping", "id": 1, "pad": "' + b"x" * 3100 + b'"}',  # over 3072 bytes
    b"[" * 2000 + b"]" * 2000,  # deep nesting: an error, not a crash on a small stack
]


def test_parse_good_and_bad(run_both: RunBoth) -> None:
    cases = [("parse", json.dumps(m).encode(), b"") for m, _ in GOOD]
    cases += [("parse", b, b"") for b in BAD]
    out = run_both("messages.py", cases).splitlines()
    assert out == [want for _, want in GOOD] + [ERR] * len(BAD)


def test_encoders(run_both: RunBoth) -> None:
    entities = [{"key": "relay", "kind": "switch", "name": "Relay"}]
    cases = [
        ("pong", b"1", b""),
        ("pong", str(MAX_ID).encode(), b""),
        ("result", str(MAX_ID).encode(), b""),
        ("result", b"5", b"unknown_entity"),
        ("describe", json.dumps(entities).encode(), b""),
        ("state", b'{"relay": true}', b""),
    ]
    out = run_both("messages.py", cases).splitlines()
    # Key order may differ from CPython's; the bytes are equal on both ports (run_both).
    assert [json.loads(line) for line in out] == [
        {"t": "pong", "id": 1},
        {"t": "pong", "id": MAX_ID},
        {"t": "result", "id": MAX_ID, "ok": True},
        {"t": "result", "id": 5, "ok": False, "error": "unknown_entity"},
        {"t": "describe", "fw": "1.0", "model": "qemu", "name": "Test", "entities": entities},
        {"t": "state", "s": {"relay": True}},
    ]


def test_envelope(run_both: RunBoth) -> None:
    peer = bytes(range(1, 11))
    good_types = [0x01, 0x03, 0x10, 0x11, 0x20, 0x31, 0x33, 0x41]
    cases = [("env", bytes([t]) + peer + b"payload", b"") for t in good_types]
    expected = [f"{t} {peer.hex()} {b'payload'.hex()}" for t in good_types]
    cases.append(("env", bytes([0x20]) + peer, b""))  # empty payload is fine
    expected.append(f"32 {peer.hex()} ")
    bad = [
        b"",
        b"\x20" + peer[:9],  # shorter than the header
        b"\x20" + peer + bytes(4096 - 11 + 1),  # one byte over 4096
        b"\x02" + peer,  # AUTH_RESPONSE: device -> relay only
        b"\x00" + peer,
        b"\xff" + peer,
    ]
    cases += [("env", b, b"") for b in bad]
    expected += ["ERR:EnvelopeError"] * len(bad)
    cases += [("hdr", peer, b"32"), ("hdr", peer[:9], b"32")]
    expected += [(bytes([0x20]) + peer).hex(), "ERR:EnvelopeError"]
    out = run_both("messages.py", cases).splitlines()
    assert [line.rstrip() for line in out] == [e.rstrip() for e in expected]


def test_endpoint_ids(run_both: RunBoth) -> None:
    # An 80-bit id is a multi-digit heap integer on both ports, but with 16-bit
    # mpz digits on the board; all-ones and top-bit ids hit every digit boundary.
    pubs = [bytes(32), bytes(range(32)), b"\xff" * 32]
    raw_ids = [b"\xff" * 10, b"\x80" + bytes(9), bytes(9) + b"\x01"]
    cases = [("id", pub, raw) for pub, raw in zip(pubs, raw_ids, strict=True)]

    def text(eid: bytes) -> str:
        s = base64.b32encode(eid).decode().lower()
        return "-".join(s[i : i + 4] for i in range(0, 16, 4))

    expected = []
    for pub, raw in zip(pubs, raw_ids, strict=True):
        eid = hashlib.sha256(pub).digest()[:10]
        expected.append(f"{eid.hex()} {text(eid)} {text(raw)}")
    assert text(b"abcdefghij") == "mfrg-gzdf-mztw-q2lk"  # PROTOCOL.md section 1.1
    assert run_both("messages.py", cases).splitlines() == expected
