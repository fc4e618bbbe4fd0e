"""Noise_KK responder (the device's side of a session) on the Cortex-M3 port.

Checked against every cacophony KK vector (KK, KK1, KKpsk0, KKpsk2) and against a
session transcript made by the HA side (homeseal_protocol/crypto/noise.py,
on `cryptography`), including tampered, replayed and out-of-turn messages.
"""

from __future__ import annotations

import hashlib

import pytest

from homeseal_protocol.crypto import noise as ha_noise
from tests.qemu.conftest import RunBoth
from tests.support import load_shared_vectors

pytestmark = [pytest.mark.qemu, pytest.mark.micropython]  # run_both: the board and the unix port

KK = "Noise_KK_25519_ChaChaPoly_SHA256"
Step = tuple[str, bytes, bytes, bytes, bytes, bytes, bytes]


def _step(kind: str, *fields: bytes | str) -> Step:
    raw = [f.encode() if isinstance(f, str) else f for f in fields]
    raw += [b""] * (6 - len(raw))
    return (kind, *raw)  # type: ignore[return-value]


def _hs(
    protocol: str, prologue: bytes, keys: tuple[bytes, bytes, bytes], psks: bytes = b""
) -> Step:
    """A responder with keys = (s private, e private, rs)."""
    return _step("hs", protocol, prologue, *keys, psks)


def test_cacophony_kk_vectors(run_both: RunBoth) -> None:
    data = load_shared_vectors("noise_cacophony_25519_ChaChaPoly_SHA256.json")
    vectors = [v for v in data["vectors"] if v["protocol_name"].split("_")[1].startswith("KK")]
    assert len(vectors) == 4
    steps, expected = [], []
    for v in vectors:
        h = {k: bytes.fromhex(v[k]) for k in ("resp_prologue", "resp_static", "resp_ephemeral")}
        h["resp_remote_static"] = bytes.fromhex(v["resp_remote_static"])
        psks = b"".join(bytes.fromhex(p) for p in v.get("resp_psks", []))
        steps.append(
            _hs(
                v["protocol_name"],
                h["resp_prologue"],
                (h["resp_static"], h["resp_ephemeral"], h["resp_remote_static"]),
                psks,
            )
        )
        expected.append("hs")
        for i, m in enumerate(v["messages"]):
            payload, ct = bytes.fromhex(m["payload"]), bytes.fromhex(m["ciphertext"])
            from_initiator = i % 2 == 0
            if i < 2:
                steps.append(_step("read", ct) if from_initiator else _step("write", payload))
                hh = v["handshake_hash"]
                expected.append(m["payload"] if from_initiator else f"{m['ciphertext']}|{hh}")
            else:
                steps.append(_step("recv", ct) if from_initiator else _step("send", payload))
                expected.append(m["payload"] if from_initiator else m["ciphertext"])
    assert run_both("noise_responder.py", steps, timeout=300).splitlines() == expected


def _keys(label: str) -> bytes:
    return hashlib.sha256(b"homeseal qemu test " + label.encode()).digest()


def test_session_against_ha_side(run_both: RunBoth) -> None:
    device_s, controller_s = _keys("device s"), _keys("controller s")
    device_e, controller_e = _keys("device e"), _keys("controller e")
    device_pub = ha_noise.KeyPair.from_private(device_s).public
    controller_pub = ha_noise.KeyPair.from_private(controller_s).public
    # PROTOCOL.md section 6: "HomeSeal v1 session" ‖ device id ‖ controller id.
    prologue = b"HomeSeal v1 session" + bytes(range(10)) + bytes(range(10, 20))

    ha = ha_noise.HandshakeState(KK, True, prologue, s=controller_s, e=controller_e, rs=device_pub)
    ref = ha_noise.HandshakeState(KK, False, prologue, s=device_s, e=device_e, rs=controller_pub)
    msg1 = ha.write_message()
    assert ref.read_message(msg1) == b""
    msg2 = ref.write_message()
    assert ha.read_message(msg2) == b""
    assert len(msg1) == len(msg2) == 48
    ha_send, ha_recv = ha.transport()
    ref_send, _ = ref.transport()

    commands = [b'{"t":"ping","id":1}', b'{"t":"command","id":2,"key":"relay","action":"turn_on"}']
    replies = [b'{"t":"pong","id":1}', b'{"t":"result","id":2}']
    keys = (device_s, device_e, controller_pub)
    steps = [_hs(KK, prologue, keys), _step("read", msg1), _step("write")]
    expected = ["hs", "", f"{msg2.hex()}|{ha.get_handshake_hash().hex()}"]
    sent = []
    for cmd, reply in zip(commands, replies, strict=True):
        sent.append(ha_send.encrypt_with_ad(b"", cmd))
        steps += [_step("recv", sent[-1]), _step("send", reply)]
        expected += [cmd.hex(), ref_send.encrypt_with_ad(b"", reply).hex()]
    # Nonces across the 31-bit small-int and 32-bit word boundaries, the last
    # usable one (2^64 - 2), then exhaustion; Rekey; the HA side must agree.
    ping = b'{"t":"ping","id":9}'
    for n in (2**31 - 1, 2**32, 2**64 - 2):
        ref_send.set_nonce(n)
        steps += [_step("setn", "send", str(n)), _step("send", ping)]
        expected += ["n", ref_send.encrypt_with_ad(b"", ping).hex()]
    steps.append(_step("send", ping))
    expected.append("ERR:ValueError")
    ref_send.set_nonce(5)
    ref_send.rekey()
    steps += [_step("setn", "send", "5"), _step("rekey", "send"), _step("send", ping)]
    expected += ["n", "rekey", ref_send.encrypt_with_ad(b"", ping).hex()]
    tampered = bytearray(ha_send.encrypt_with_ad(b"", b'{"t":"ping","id":3}'))
    tampered[5] ^= 0x01
    steps += [_step("recv", bytes(tampered)), _step("recv", sent[0]), _step("recv", b"short")]
    expected += ["ERR:ValueError"] * 3

    # A HANDSHAKE1 with a flipped bit, then an out-of-turn read on the failed state.
    bad1 = bytearray(msg1)
    bad1[40] ^= 0x80
    steps += [_hs(KK, prologue, keys), _step("read", bytes(bad1)), _step("write")]
    expected += ["hs", "ERR:ValueError", "ERR:RuntimeError"]
    # Another controller's key (the device pinned controller_s): msg1 does not decrypt.
    steps += [_hs(KK, prologue, (device_s, device_e, device_pub)), _step("read", msg1)]
    expected += ["hs", "ERR:ValueError"]

    out = run_both("noise_responder.py", steps, timeout=300).splitlines()
    assert out == expected
    # The HA side reads what the Cortex-M3 device sent.
    assert ha_recv.decrypt_with_ad(b"", bytes.fromhex(out[4])) == replies[0]
