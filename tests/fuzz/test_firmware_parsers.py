"""Fuzz the firmware's parsers of network bytes under CPython (tests/cpython_shim), then
replay the edge inputs on the real MicroPython unix port and compare verdicts.

Targets (firmware_targets.py): the relay envelope, the controller's application
messages, HANDSHAKE1 (Noise KK responder), AUTH_CHALLENGE (relay auth), the websocket
frame reader, and the pairing state machine (below). Property: a parsed value or the
module's own error — never another exception, never a hang — and the same verdict on
both interpreters (a difference is a bug: the boards run MicroPython).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from homeseal_protocol import messages as cmsg
from tests.firmware_crypto import import_firmware
from tests.support import run_micropython
from tools.provision import provisioning_record

from .profile import fuzz
from .strategies import LOW_ORDER, frames, keys32, raw
from .test_client_parsers import (
    CONTROLLER_ID,
    CONTROLLER_KEY,
    CONTROLLER_PUB,
    DEVICE_ID,
    DEVICE_PUB,
    app_bytes,
    pairing_bytes,
    session_bytes,
)

HERE = Path(__file__).resolve().parent

# The unix port's time.ticks_* for CPython; the firmware masks nothing with them.
_TICKS = {
    "ticks_ms": lambda: int(time.monotonic() * 1000),
    "ticks_add": lambda a, b: a + b,
    "ticks_diff": lambda a, b: a - b,
}


@pytest.fixture(autouse=True, scope="module")
def firmware_time() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for name, fn in _TICKS.items():
            mp.setattr(time, name, fn, raising=False)
        yield


_STATE: list[Path] = []


@pytest.fixture(autouse=True, scope="module")
def provisioned_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory with a provisioning record (code 20231187), for the pairing target."""
    root = tmp_path_factory.mktemp("fw-pairing")
    record = provisioning_record("20231187", b"s" * 16, 1000, DEVICE_ID)
    (root / "provisioning.json").write_text(json.dumps(record))
    _STATE[:] = [root]
    return root


def _targets() -> Any:
    import_firmware("envelope")  # puts the shim and firmware/ on sys.path
    from tests.fuzz import firmware_targets  # noqa: PLC0415 - after the path setup

    firmware_targets.setup(  # type: ignore[no-untyped-call]
        DEVICE_PUB, CONTROLLER_PUB, DEVICE_ID, CONTROLLER_ID, str(_STATE[0])
    )
    return firmware_targets


# Inputs tried under CPython, replayed on MicroPython at the end (bounded per target).
CORPUS: dict[str, list[bytes]] = {}
_PER_TARGET = 40


def check(target: str, data: bytes) -> str:
    verdict: str = _targets().classify(target, data)
    assert not verdict.startswith("CRASH"), f"{target}({data[:80].hex()}…): {verdict}"
    bucket = CORPUS.setdefault(target, [])
    if len(bucket) < _PER_TARGET:
        bucket.append(bytes(data))
    return verdict


# Edge inputs that are always replayed, whatever hypothesis drew.
EDGES: dict[str, list[bytes]] = {
    "envelope": [b"", bytes(10), bytes(11), b"\x01" + bytes(10), b"\x02" + bytes(10),
                 b"\x20" + bytes(4085), b"\x20" + bytes(4086), b"\xff" * 11],
    "messages": [b"", b"{}", b"[]", b"null", b"\xff", b'{"t":"ping","id":1}',
                 b'{"t":"ping","id":true}', b'{"t":"ping","id":1.0}', b'{"t":"ping","id":0}',
                 b'{"t":"ping","id":2147483648}', b'{"t":"ping","id":1,"x":1}',
                 b'{"t":"command","id":1,"key":"relay1","action":"turn_on","brightness":256}',
                 b'{"t":"command","id":1,"key":"lamp","action":"turn_on","brightness":255}',
                 b'{"t":"command","id":1,"key":"","action":"x"}',
                 b'{"t":"unpair","id":99}', b'{"t":"ping","id":1', b'{"t":"ping","id":1}x',
                 b'{"t":"ping","id":1' + b"0" * 400 + b"}", b'{"t":"ping","id":1e999}',
                 b'{"t":"ping","id":NaN}', b'{"t":"ping","id":' + b"[" * 200 + b"]" * 200 + b"}",
                 b'{"t":"ping","t":"pong","id":1}', b'{"t":"p\\u0069ng","id":1}',
                 b'{"t":"ping","id":1}' + b" " * 3060, b'{"t":"ping","id":1}' + b" " * 3054,
                 b'{"t":"command","id":1,"key":"\\ud800","action":"x"}',
                 b'{"t":"command","id":1,"key":"a","action":"turn_on","brightness":1e2}',
                 b'{"t":"command","id":1,"key":"a","action":"turn_on","brightness":-0}',
                 b'{"t":"ping","id":1.5}', b'{"t":"ping","id":-1}',
                 b"{'t':'ping','id':1}",
                 b'\xef\xbb\xbf{"t":"ping","id":1}', b'{"t":"ping","id":1e0}',
                 b'{"t":"command","id":1,"key":"a\\u0000","action":"x"}',
                 b'{"t":"unpair","id":1,"brightness":2}', b'{"t":"ping","id":[1]}',
                 b'{"t":"PING","id":1}', b'{"t":"ping","id":2147483647}',
                 # MicroPython's json alone accepts these; JSON (and §7) does not.
                 b'{"t":"ping","id":01}', b'{"t":"ping","id":1,}', b'{"t":"ping","id":1}\x00',
                 b'{"t":"ping","id":-01}', b'{"t":"pi\x01ng","id":1}', b'{"t":"ping","id":10}',
                 b'{"t":"ping","id":1} ',
                 b'{"t":"command","id":1,"key":"a","action":"turn_on","brightness":0}'],
    "handshake1": [b"", bytes(47), bytes(48), bytes(49), *(k + bytes(16) for k in LOW_ORDER)],
    "auth_challenge": [b"", bytes(63), bytes(64), bytes(65), *(k + bytes(32) for k in LOW_ORDER)],
    "websocket": [b"", b"\x82", b"\x82\x00", b"\x82\x05hello", b"\x81\x01a", b"\x02\x01a\x80\x01b",
                  b"\x80\x01a", b"\x89\x00\x82\x01z", b"\x89\x7e\x00\x80", b"\x88\x02\x03\xe8",
                  b"\x88\x00", b"\x88\x01\x03", b"\x8a\x00\x82\x00", b"\xc2\x00", b"\x82\x80abcd",
                  b"\x82\x7e\x10\x00" + bytes(4096), b"\x82\x7e\x10\x01" + bytes(4097),
                  b"\x82\x7f" + bytes(4) + b"\x00\x00\x00\x05hello", b"\x82\x7f\x01" + bytes(7),
                  b"\x8b\x00", b"\x83\x00",
                  b"\x02\x7e\x08\x00" + bytes(2048) + b"\x80\x7e\x08\x01" + bytes(2049),
                  b"\x01\x01a\x89\x00\x80\x01b"],
    "pairing": [b"", b"\x02\x01\x01", b"\x02\x01\x02", b"\x01\x01", b"\x02\x02\x01",
                b"\x02\x01\x01\x42\x03" + b"\x04" + bytes(64),
                b"\x02\x01\x01\x01\x7f", b"\x02\x01\x01\x03\x7f\x02\x00",
                b"\x02\x01\x01\x51\x05" + bytes(80)],
}  # fmt: skip


@fuzz()
@given(data=raw | frames() | st.binary(min_size=4090, max_size=4200))
def test_envelope(data: bytes) -> None:
    verdict = check("envelope", data)
    if verdict.startswith("ok:"):
        assert 11 <= len(data) <= 4096


@fuzz()
@given(data=app_bytes)
def test_messages(data: bytes) -> None:
    verdict = check("messages", data)
    if verdict.startswith("ok:"):
        # What the firmware accepts, the controller's stricter rules also accept as
        # a controller message (the two parsers agree on the contract of §7)…
        cmsg.parse_controller_message(data)


@fuzz(0.25)
@given(data=st.binary(min_size=48, max_size=48) | st.builds(lambda k: k + bytes(16), keys32) | raw)
@example(data=bytes(48))
def test_handshake1(data: bytes) -> None:
    assert check("handshake1", data) == "err:ValueError"


@fuzz(0.25)
@given(data=st.binary(min_size=64, max_size=64) | st.builds(lambda k: k + bytes(32), keys32) | raw)
def test_auth_challenge(data: bytes) -> None:
    verdict = check("auth_challenge", data)
    if len(data) != 64:
        assert verdict == "err:AuthError"


ws_chunks = st.lists(
    st.builds(
        lambda b0, ln, body: bytes((b0, ln)) + body,
        st.sampled_from([0x81, 0x82, 0x80, 0x01, 0x02, 0x00, 0x88, 0x89, 0x8A, 0x8B, 0xC2])
        | st.integers(0, 255),
        st.integers(0, 127),
        st.binary(max_size=140),
    )
    | st.binary(max_size=30),
    max_size=6,
).map(b"".join)


@fuzz(0.5)
@given(data=ws_chunks | raw)
def test_websocket_reader(data: bytes) -> None:
    verdict = check("websocket", data)
    assert verdict.startswith("ok:WS")


@pytest.mark.micropython
def test_replay_on_micropython() -> None:
    """The edge inputs and a sample of what hypothesis drew, on the real unix port."""
    corpus = {t: EDGES[t] + [d for d in CORPUS.get(t, []) if d not in EDGES[t]] for t in EDGES}
    expected = {t: [check(t, d) for d in datas] for t, datas in corpus.items()}
    script = (
        "import json, sys\n"
        "import firmware_targets as ft\n"
        "ft.setup(*[bytes.fromhex(x) for x in sys.argv[2:6]], sys.argv[6])\n"
        "with open(sys.argv[1]) as f:\n"
        "    corpus = json.load(f)\n"
        "out = {}\n"
        "for t in corpus:\n"
        "    out[t] = [ft.classify(t, bytes.fromhex(h)) for h in corpus[t]]\n"
        "print(json.dumps(out))\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.json"
        path.write_text(json.dumps({t: [d.hex() for d in ds] for t, ds in corpus.items()}))
        ids = [DEVICE_PUB, CONTROLLER_PUB, DEVICE_ID, CONTROLLER_ID]
        state = Path(tmp) / "state"
        state.mkdir()
        (state / "provisioning.json").write_text((_STATE[0] / "provisioning.json").read_text())
        out = run_micropython(
            script, str(path), *(x.hex() for x in ids), str(state), heapsize="4m", timeout=240,
            extra_path=[HERE],
        )  # fmt: skip
    got = json.loads(out.strip().splitlines()[-1])
    diffs = [
        f"{t}: input {d[:64].hex()} CPython {e!r} MicroPython {g!r}"
        for t in corpus
        for d, e, g in zip(corpus[t], expected[t], got[t], strict=True)
        if e != g
    ]
    crashes = [f"{t}: {g}" for t in got for g in got[t] if g.startswith("CRASH")]
    assert not crashes, "\n".join(crashes)
    assert not diffs, "\n".join(diffs)


_ = CONTROLLER_KEY, pairing_bytes, session_bytes  # shared strategies used by other tests


def _pack(messages: list[bytes]) -> bytes:
    return b"".join(bytes((len(m),)) + m for m in messages)


pairing_sequences = st.builds(
    lambda first, then: _pack([first, *then]),
    st.sampled_from([b"\x01\x01"]) | pairing_bytes.filter(lambda b: len(b) < 256),
    st.lists(
        pairing_bytes.filter(lambda b: len(b) < 256)
        | st.binary(min_size=65, max_size=65).map(lambda b: b"\x03" + b),
        max_size=3,
    ),
)


@fuzz(0.25)
@given(data=pairing_sequences)
def test_pairing(data: bytes) -> None:
    """Random PAIR_START / PAIR payloads: answered with PAIR frames, never paired."""
    verdict = check("pairing", data)
    assert verdict.startswith("ok:")
