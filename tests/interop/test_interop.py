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

from homeseal_protocol import pairing
from homeseal_protocol.crypto import p256, spake2plus
from homeseal_protocol.crypto.noise import KeyPair
from homeseal_protocol.errors import DecryptFailed, HandshakeFailed, SessionClosed, SessionReset
from homeseal_protocol.ids import endpoint_id
from homeseal_protocol.session import InitiatorSession, ResetReason, prologue
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


CONFIRM = b'{"t":"ping","id":0}'


def _session(device: Peer, controller: KeyPair = CONTROLLER) -> InitiatorSession:
    """A session the device has confirmed: the handshake, then a first message under
    the new keys (§6: the device sends nothing in a session before that)."""
    session = InitiatorSession(
        controller.private, DEVICE.public, DEVICE_ID, endpoint_id(controller.public)
    )
    assert session.receive(device.exchange(session.start())) is None
    assert session.is_open
    assert session.receive(device.exchange(session.encrypt(CONFIRM))) == CONFIRM
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
    assert session.messages_sent == 1001  # the confirmation, then 1000
    assert session.messages_received == 1001
    after = _report(device)
    assert after["decrypted"] == before["decrypted"] + 1001  # type: ignore[operator]
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


def test_l3_unknown_controller_gets_a_two_byte_handshake_failed(device: Peer) -> None:
    """RESET is `0x04 ‖ reason` and nothing more: no device key that nothing could
    authenticate (L3)."""
    stranger = KeyPair.from_private(hashlib.sha256(b"interop stranger").digest())
    session = InitiatorSession(
        stranger.private, DEVICE.public, DEVICE_ID, endpoint_id(stranger.public)
    )
    reply = device.exchange(session.start())
    assert reply == bytes((0x04, ResetReason.HANDSHAKE_FAILED))
    with pytest.raises(SessionReset) as err:
        session.receive(reply)
    assert err.value.reason == ResetReason.HANDSHAKE_FAILED


def test_l2_replayed_handshake1_keeps_the_live_session(device: Peer) -> None:
    """The device answers a replayed HANDSHAKE1 (a pending session) and goes on with
    the live one; the controller ignores the stray HANDSHAKE2."""
    session = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    hs1 = session.start()
    assert session.receive(device.exchange(hs1)) is None
    assert session.receive(device.exchange(session.encrypt(CONFIRM))) == CONFIRM
    for i in range(3):
        reply = device.exchange(hs1)
        assert reply[0] == 0x02
        assert session.receive(reply) is None  # not this session's handshake
        message = json.dumps({"t": "ping", "id": i + 1}).encode()
        assert session.receive(device.exchange(session.encrypt(message))) == message
    assert session.is_open


def test_l2_new_handshake_replaces_the_session_once_confirmed(device: Peer) -> None:
    old = _session(device)
    new = InitiatorSession(CONTROLLER.private, DEVICE.public, DEVICE_ID, CONTROLLER_ID)
    assert new.receive(device.exchange(new.start())) is None
    # Until the new session's first message, the old one still works.
    assert old.receive(device.exchange(old.encrypt(b'{"t":"ping","id":5}'))) is not None
    assert new.receive(device.exchange(new.encrypt(CONFIRM))) == CONFIRM
    # Confirmed: the old session is gone (its message decrypts with neither).
    assert device.exchange(old.encrypt(b'{"t":"ping","id":6}')) == bytes(
        (0x04, ResetReason.DECRYPT_FAILED)
    )


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
# §5.1: idProver empty, idVerifier the device id; the Context binds the controller id
# and the attempt's PBKDF parameter exchange (any two messages do for these tests).
REQUEST = b"\x01\x01"
RESPONSE = b"\x02\x00\x00\x03\xe8\x10" + SALT + b"\x14"
CONTEXT = pairing.pairing_context(CONTROLLER_ID, REQUEST, RESPONSE)
IDS = {"id_prover": pairing.ID_PROVER, "id_verifier": DEVICE_ID}


def _prover_confirm_p(x: int, w0: int, w1: int, share_p: bytes, share_v: bytes) -> bytes:
    """confirmP as a Prover with (w0, w1) computes it, whether or not confirmV verified."""
    base = p256.decode_point(share_v) - p256.multiply(w0, spake2plus.N)
    z, v = p256.multiply(x, base).encode(), p256.multiply(w1, base).encode()
    tt = spake2plus.transcript(CONTEXT, pairing.ID_PROVER, DEVICE_ID, share_p, share_v, z, v, w0)
    k_confirm_p, _, _ = spake2plus.key_schedule(tt)
    return hmac.digest(k_confirm_p, share_v, hashlib.sha256)


def _verifier_peer() -> tuple[Peer, bytes, bytes]:
    w0, big_l = spake2plus.compute_verifier(CODE.encode(), SALT, 1000, **IDS)
    peer = Peer("spake", CONTEXT.hex(), "", DEVICE_ID.hex(), w0.hex(), big_l.hex())
    return peer, w0, big_l


def test_spake2plus_right_code_same_key() -> None:
    peer, _, _ = _verifier_peer()
    try:
        w0, w1 = spake2plus.derive_w0_w1(CODE.encode(), SALT, 1000, **IDS)
        prover = spake2plus.Prover(CONTEXT, pairing.ID_PROVER, DEVICE_ID, w0, w1)
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
        w0, w1 = spake2plus.derive_w0_w1(b"27182819", SALT, 1000, **IDS)
        prover = spake2plus.Prover(CONTEXT, pairing.ID_PROVER, DEVICE_ID, w0, w1, x=x)
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


def test_firmware_reproduces_worked_examples(tmp_path: Path) -> None:
    """Appendix A's device-side values (revision 2: the Context binds the controller id
    and the PBKDF parameter exchange, idProver is empty), recomputed by the firmware's own
    modules, and every pairing message the device sends, from its own pairing code."""
    examples = Path(__file__).resolve().parents[2] / "docs" / "examples" / "protocol_v1.json"
    out = run_micropython(RESPONDER.parent / "examples.py", str(examples), str(tmp_path))
    lines = out.split("\n")
    assert lines[-2:] == ["done", ""], out
    assert len([line for line in lines if line.startswith("ok ")]) == 35, out
