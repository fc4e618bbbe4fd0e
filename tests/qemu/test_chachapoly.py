"""ChaCha20-Poly1305 (RFC 8439) on the Cortex-M3 port, where viper words are 32-bit.

RFC 8439's block, Poly1305 and AEAD examples are embedded; every Wycheproof
ChaCha20-Poly1305 case runs (they are cheap); Poly1305 cases built to push
every limb and the final reduction to its maximum, and the largest 32-bit block
counter, are checked against `cryptography`.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.poly1305 import Poly1305

from tests.qemu.conftest import RunBoth
from tests.support import load_shared_vectors

pytestmark = [pytest.mark.qemu, pytest.mark.micropython]  # run_both: the board and the unix port

# RFC 8439 section 2.8.2.
AEAD_KEY = bytes(range(0x80, 0xA0))
AEAD_NONCE = bytes.fromhex("070000004041424344454647")
AEAD_AD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
AEAD_PT = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
    b"for the future, sunscreen would be it."
)
AEAD_CT = (
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
)
AEAD_TAG = "1ae10b594f09e26a7e902ecbd0600691"
# RFC 8439 section 2.5.2.
POLY_KEY = bytes.fromhex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
POLY_MSG = b"Cryptographic Forum Research Group"
POLY_TAG = "a8061dc1305136c6c22b8baf0c0127a9"
# RFC 8439 section 2.3.2: key 00..1f, counter 1; the block starts with these bytes.
BLOCK_NONCE = bytes.fromhex("000000090000004a00000000")
BLOCK_START = "10f1e7e4d13b5915500fdd1fa32071c4"


def _chacha20(key: bytes, counter: int, nonce: bytes, data: bytes) -> bytes:
    # cryptography's ChaCha20 nonce is the 16-byte block: counter (LE) ‖ nonce.
    enc = Cipher(algorithms.ChaCha20(key, counter.to_bytes(4, "little") + nonce), None)
    return enc.encryptor().update(data)


def _poly(key: bytes, msg: bytes) -> str:
    return Poly1305.generate_tag(key, msg).hex()


def test_rfc8439_examples(run_both: RunBoth) -> None:
    key = bytes(range(32))
    cases = [
        ("aead", AEAD_KEY, AEAD_NONCE, AEAD_AD, AEAD_PT, bytes.fromhex(AEAD_CT + AEAD_TAG)),
    ]
    raw = [
        ("block", key, 1, BLOCK_NONCE, b""),
        ("poly", POLY_KEY, 0, b"", POLY_MSG),
    ]
    out = run_both("chachapoly.py", [c[1:] for c in cases]).splitlines()
    assert out == [f"{AEAD_CT}{AEAD_TAG}|{AEAD_PT.hex()}"]
    out = run_both("chacha_raw.py", raw).splitlines()
    assert out[0].startswith(BLOCK_START)
    assert out[0] == _chacha20(key, 1, BLOCK_NONCE, bytes(64)).hex()
    assert out[1] == POLY_TAG


def test_limb_and_counter_edges(run_both: RunBoth) -> None:
    # r with every bit clamping allows, s all ones (the final 128-bit add carries
    # out), and messages of all-ones blocks, so h is near 2^130 - 5 after each block.
    r_max = bytes.fromhex("ffffff0ffcffff0ffcffff0ffcffff0f")
    keys = [r_max + b"\xff" * 16, r_max + bytes(16), bytes(16) + b"\xff" * 16, b"\xff" * 32]
    msgs = [b"", b"\xff" * 15, b"\xff" * 16, b"\xff" * 17, b"\xff" * 64, bytes(range(256)) * 2]
    cases: list[tuple[str, bytes, int, bytes, bytes]] = [
        ("poly", k, 0, b"", m) for k in keys for m in msgs
    ]
    expected = [_poly(k, m) for k in keys for m in msgs]
    key, nonce = bytes(range(32)), bytes(range(12))
    for counter, n in ((0xFFFFFFFF, 64), (0x7FFFFFFF, 128), (0x3FFFFFFF, 200)):
        cases.append(("xor", key, counter, nonce, bytes(n)))
        expected.append(_chacha20(key, counter, nonce, bytes(n)).hex())
    # Past the last 32-bit counter (RFC 8439 leaves this to the implementation): only
    # the first block is fixed, but the two word sizes must still agree (run_both).
    cases.append(("xor", key, 0xFFFFFFFF, nonce, bytes(130)))
    out = run_both("chacha_raw.py", cases).splitlines()
    assert out[:-1] == expected
    assert out[-1][:128] == _chacha20(key, 0xFFFFFFFF, nonce, bytes(64)).hex()
    assert len(out[-1]) == 260


def test_wycheproof_all(run_both: RunBoth) -> None:
    data = load_shared_vectors("wycheproof_chacha20_poly1305_test.json")
    cases, expected, ids = [], [], []
    for group in data["testGroups"]:
        for t in group["tests"]:
            key, iv, aad, msg, ct, tag = (
                bytes.fromhex(t[k]) for k in ("key", "iv", "aad", "msg", "ct", "tag")
            )
            cases.append((key, iv, aad, msg, ct + tag))
            if len(iv) != 12:
                # Only 96-bit nonces exist in RFC 8439: both directions must refuse.
                assert t["result"] == "invalid"
                expected.append("ERR:ValueError|ERR:ValueError")
            else:
                sealed = ChaCha20Poly1305(key).encrypt(iv, msg, aad).hex()
                if t["result"] == "valid":
                    assert sealed == (ct + tag).hex()
                    expected.append(f"{sealed}|{msg.hex()}")
                else:
                    expected.append(f"{sealed}|ERR:ValueError")
            ids.append(t["tcId"])
    out = run_both("chachapoly.py", cases).splitlines()
    assert len(out) == len(expected) == 325
    wrong = [i for i, a, b in zip(ids, out, expected, strict=True) if a != b]
    assert not wrong, f"Wycheproof tcIds differing: {wrong}"
