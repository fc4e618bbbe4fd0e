"""CPython controller ↔ firmware on the real MicroPython unix port, over stdin/stdout.

The device half (tests/interop/mpy/responder.py) uses only the firmware's own
`homeseal.noise` and `homeseal.spake2plus`; the controller half is the client
library (`InitiatorSession`, `Prover`). Nothing is shared but bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from custom_components.homeseal.client import p256, pairing, spake2plus
from custom_components.homeseal.client.ids import endpoint_id
from custom_components.homeseal.client.noise import KeyPair
from custom_components.homeseal.client.session import (
    DecryptFailed,
    HandshakeFailed,
    InitiatorSession,
    ResetReason,
    SessionClosed,
    SessionReset,
    prologue,
)
from tests.support import micropython_env, micropython_path, run_micropython

pytestmark = pytest.mark.micropython

RESPONDER = Path(__file__).resolve().parent / "mpy" / "responder.py"
CONTROLLER = KeyPair.from_private(hashlib.sha256(b"interop controller").digest())
DEVICE = KeyPair.from_private(hashlib.sha256(b"interop device").digest())
CONTROLLER_ID = endpoint_id(CONTROLLER.public)
DEVICE_ID = endpoint_id(DEVICE.public)
SEND_PINGS = 0xF1
REPORT = 0xFE


class Peer:
    """One MicroPython responder process; frames are 4-byte length + body."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(micropython_path()), "-X", "heapsize=8m", str(RESPONDER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=micropython_env(),
            bufsize=0,
        )

    def send(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(len(body).to_bytes(4, "big") + body)

    def _read(self, n: int, timeout: float) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while len(buf) < n:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                pytest.fail(f"MicroPython responder silent for {timeout} s")
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                pytest.fail(f"MicroPython responder exited: {self._stderr()}")
            buf += chunk
        return buf

    def recv(self, timeout: float = 20.0) -> bytes:
        return self._read(int.from_bytes(self._read(4, timeout), "big"), timeout)

    def exchange(self, body: bytes) -> bytes:
        self.send(body)
        return self.recv()

    def _stderr(self) -> str:
        self.proc.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("MicroPython responder did not exit")
        assert self.proc.stderr is not None
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()  # type: ignore[union-attr]
        self.proc.stderr.close()
        assert code == 0, err


@pytest.fixture(scope="module")
def device() -> Iterator[Peer]:
    peer = Peer(
        "noise",
        DEVICE.private.hex(),
        CONTROLLER.public.hex(),
        prologue(DEVICE_ID, CONTROLLER_ID).hex(),
    )
    yield peer
    peer.close()


def _session(device: Peer, controller: KeyPair = CONTROLLER) -> InitiatorSession:
    session = InitiatorSession(
        controller.private, DEVICE.public, DEVICE_ID, endpoint_id(controller.public)
    )
    assert session.receive(device.exchange(session.start())) is None
    assert session.is_open
    return session


def _report(device: Peer) -> dict[str, object]:
    stats = json.loads(device.exchange(bytes((REPORT,))))
    assert isinstance(stats, dict)
    return stats


def test_kk_handshake_then_1000_messages_each_way(device: Peer) -> None:
    before = _report(device)
    started = time.perf_counter()
    session = _session(device)
    handshake = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(1000):
        message = json.dumps({"t": "command", "id": i + 1, "key": "relay", "action": "turn_on"})
        echo = session.receive(device.exchange(session.encrypt(message.encode())))
        assert echo == message.encode()
    transport = time.perf_counter() - started
    assert session.messages_sent == 1000
    assert session.messages_received == 1000
    after = _report(device)
    assert after["decrypted"] == before["decrypted"] + 1000  # type: ignore[operator]
    assert after["rejected"] == before["rejected"]
    print(f"\nKK handshake {handshake * 1000:.1f} ms; 1000 round trips {transport:.2f} s")


def _tamper_cases() -> list[str]:
    return [
        "flipped_bit",
        "flipped_tag",
        "truncated",
        "below_tag",
        "replayed",
        "reordered",
        "injected",
    ]


@pytest.mark.parametrize("case", _tamper_cases())
def test_firmware_rejects_bad_transport(device: Peer, case: str) -> None:
    session = _session(device)
    good = session.encrypt(b'{"t":"ping","id":1}')
    assert session.receive(device.exchange(good)) == b'{"t":"ping","id":1}'
    rejected_before = len(_report(device)["rejected"])  # type: ignore[arg-type]
    nxt = session.encrypt(b'{"t":"ping","id":2}')
    bad = {
        "flipped_bit": nxt[:3] + bytes([nxt[3] ^ 0x01]) + nxt[4:],
        "flipped_tag": nxt[:-1] + bytes([nxt[-1] ^ 0x80]),
        "truncated": nxt[:-1],
        "below_tag": nxt[:8],
        "replayed": good,
        "reordered": session.encrypt(b'{"t":"ping","id":3}'),
        "injected": b"\x03" + secrets.token_bytes(len(nxt) - 1),
    }[case]
    assert device.exchange(bad) == bytes((0x04, ResetReason.DECRYPT_FAILED))
    # The device discarded the session: even the genuine next message finds none.
    assert device.exchange(nxt) == bytes((0x04, ResetReason.NO_SESSION))
    rejected = _report(device)["rejected"]
    assert isinstance(rejected, list)
    assert len(rejected) == rejected_before + 1
    text = rejected[-1]
    assert text.startswith("transport: ")
    for secret in (DEVICE.private, CONTROLLER.private):
        assert secret.hex() not in text


@pytest.mark.parametrize("case", ["flipped_bit", "truncated", "replayed", "reordered", "injected"])
def test_controller_rejects_bad_transport(device: Peer, case: str) -> None:
    session = _session(device)
    device.send(bytes((SEND_PINGS, 2)))
    first, second = device.recv(), device.recv()
    if case == "replayed":
        assert session.receive(first) == b'{"t":"ping","id":0}'
        bad = first
    else:
        bad = {
            "flipped_bit": first[:5] + bytes([first[5] ^ 0x04]) + first[5 + 1 :],
            "truncated": first[:-1],
            "reordered": second,
            "injected": b"\x03" + secrets.token_bytes(len(first) - 1),
        }[case]
    with pytest.raises(DecryptFailed) as err:
        session.receive(bad)
    assert err.value.reply == bytes((0x04, ResetReason.DECRYPT_FAILED))
    with pytest.raises(SessionClosed):
        session.receive(second)
    with pytest.raises(SessionClosed):
        session.encrypt(b"{}")


def test_unknown_controller_gets_handshake_failed_with_device_key(device: Peer) -> None:
    stranger = KeyPair.from_private(hashlib.sha256(b"interop stranger").digest())
    session = InitiatorSession(
        stranger.private, DEVICE.public, DEVICE_ID, endpoint_id(stranger.public)
    )
    with pytest.raises(SessionReset) as err:
        session.receive(device.exchange(session.start()))
    assert err.value.reason == ResetReason.HANDSHAKE_FAILED
    assert err.value.device_key == DEVICE.public


def test_tampered_handshake2_rejected_by_controller(device: Peer) -> None:
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    reply = device.exchange(session.start())
    assert reply[0] == 0x02
    with pytest.raises(HandshakeFailed):
        session.receive(reply[:-1] + bytes([reply[-1] ^ 1]))
    assert session.closed


# ---------------------------------------------------------------- SPAKE2+


SALT = hashlib.sha256(b"interop salt").digest()[:16]
CODE = "27182818"


def _prover_confirm_p(x: int, w0: int, w1: int, share_p: bytes, share_v: bytes) -> bytes:
    """confirmP as a Prover with (w0, w1) computes it, whether or not confirmV verified."""
    base = p256.decode_point(share_v) - p256.multiply(w0, spake2plus.N)
    z, v = p256.multiply(x, base).encode(), p256.multiply(w1, base).encode()
    tt = spake2plus.transcript(
        pairing.CONTEXT, CONTROLLER_ID, DEVICE_ID, share_p, share_v, z, v, w0
    )
    k_confirm_p, _, _ = spake2plus.key_schedule(tt)
    return hmac.digest(k_confirm_p, share_v, hashlib.sha256)


def _verifier_peer() -> tuple[Peer, bytes, bytes]:
    w0, big_l = spake2plus.compute_verifier(CODE.encode(), SALT, 1000)
    peer = Peer(
        "spake", pairing.CONTEXT.hex(), CONTROLLER_ID.hex(), DEVICE_ID.hex(), w0.hex(), big_l.hex()
    )
    return peer, w0, big_l


def test_spake2plus_right_code_same_key() -> None:
    peer, _, _ = _verifier_peer()
    try:
        w0, w1 = spake2plus.derive_w0_w1(CODE.encode(), SALT, 1000)
        prover = spake2plus.Prover(pairing.CONTEXT, CONTROLLER_ID, DEVICE_ID, w0, w1)
        reply = peer.exchange(prover.start())
        assert reply[:1] == b"V", reply
        confirm_p, k_shared = prover.finish(reply[1:66], reply[66:98])
        final = peer.exchange(confirm_p)
        assert final == b"K" + k_shared
    finally:
        peer.close()


def test_spake2plus_wrong_code_both_confirmations_fail() -> None:
    peer, w0_bytes, big_l = _verifier_peer()
    try:
        x = secrets.randbelow(p256.N - 1) + 1
        w0, w1 = spake2plus.derive_w0_w1(b"27182819", SALT, 1000)
        prover = spake2plus.Prover(pairing.CONTEXT, CONTROLLER_ID, DEVICE_ID, w0, w1, x=x)
        share_p = prover.start()
        reply = peer.exchange(share_p)
        assert reply[:1] == b"V", reply
        share_v, confirm_v = reply[1:66], reply[66:98]
        with pytest.raises(spake2plus.ConfirmationError) as ours:
            prover.finish(share_v, confirm_v)
        # The best a wrong-code Prover can send: its own confirmP. The device refuses it.
        final = peer.exchange(_prover_confirm_p(x, w0, w1, share_p, share_v))
        assert final[:1] == b"E", final
        theirs = final[1:].decode()
        assert theirs
        for text in (str(ours.value), theirs):
            for secret in (w0_bytes, big_l, p256.scalar_to_bytes(w0), p256.scalar_to_bytes(w1)):
                assert secret.hex() not in text.lower()
    finally:
        peer.close()


def test_spake2plus_invalid_share_refused_by_firmware() -> None:
    peer, _, _ = _verifier_peer()
    try:
        reply = peer.exchange(b"\x04" + bytes(64))  # not on the curve
        assert reply[:1] == b"E", reply
    finally:
        peer.close()


# ---------------------------------------------------------------- worked examples


def test_firmware_reproduces_worked_examples() -> None:
    """Appendix A's device-side values, recomputed by the firmware's own modules."""
    examples = Path(__file__).resolve().parents[2] / "docs" / "examples" / "protocol_v1.json"
    out = run_micropython(RESPONDER.parent / "examples.py", str(examples))
    lines = out.split("\n")
    assert lines[-2:] == ["done", ""], out
    assert len([line for line in lines if line.startswith("ok ")]) == 23, out
