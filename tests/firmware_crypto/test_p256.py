"""Firmware P-256 (homeseal/p256.py) on the real MicroPython unix port.

Expected values come from `cryptography` (OpenSSL) and from the RFC 9382 constants;
the Wycheproof ECDH secp256r1 points check point validation and scalar multiplication.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import load_shared_vectors, run_micropython, shared_vector_path

pytestmark = pytest.mark.micropython

MPY = Path(__file__).parent / "mpy"
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
# RFC 9382 section 6, P-256 (compressed SEC1).
RFC9382_M = "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
RFC9382_N = "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"


def public(k: int) -> str:
    key = ec.derive_private_key(k, ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ).hex()


def decompress(hex_point: str) -> str:
    raw = bytes.fromhex(hex_point)
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ).hex()


def point_with_small_x() -> tuple[int, int]:
    """A curve point whose x is below 2^256 - p, so x + p still fits in 32 bytes."""
    x = 0
    while True:
        rhs = (x**3 - 3 * x + B) % P
        y = pow(rhs, (P + 1) // 4, P)
        if y * y % P == rhs:
            return x, y
        x += 1


def enc(x: int, y: int) -> str:
    return "04" + x.to_bytes(32, "big").hex() + y.to_bytes(32, "big").hex()


def test_p256_arithmetic_and_validation(tmp_path: Path) -> None:
    scalars = [1, 2, 3, 15, 16, 17, 31, 32, 33, 2**64 - 1, 2**252 + 5, ORDER - 1, ORDER - 2]
    scalars += [secrets.randbelow(ORDER - 1) + 1 for _ in range(4)]
    base7 = [1, 2, ORDER - 1, secrets.randbelow(ORDER)]
    g = public(1)
    sx, sy = point_with_small_x()
    gx, gy = int(g[2:66], 16), int(g[66:], 16)
    decode = {
        g: "ok:" + g,
        g[:-2]: "ValueError",  # 64 bytes
        g + "00": "ValueError",  # 66 bytes
        "": "ValueError",
        "00": "ValueError",  # SEC1 identity
        "04" + "00" * 64: "ValueError",  # (0, 0): not on the curve
        "02" + g[2:66]: "ValueError",  # compressed: not our wire format
        "05" + g[2:]: "ValueError",
        enc(gx, (gy + 1) % P): "ValueError",  # off curve
        enc(sx, sy): "ok:" + enc(sx, sy),
        enc(sx + P, sy): "ValueError",  # x >= p, on the curve mod p
        enc(sx, P - sy): "ok:" + enc(sx, P - sy),
        enc(gx, P): "ValueError",  # y >= p
        enc(gx, 2**256 - 1): "ValueError",
        enc(P, 0): "ValueError",
    }
    req = {
        "scalars": [f"{k:x}" for k in scalars],
        "base7": [f"{k:x}" for k in base7],
        "decode": list(decode),
        "double_add": public(5),
    }
    path = tmp_path / "req.json"
    path.write_text(json.dumps(req))
    out = json.loads(run_micropython(MPY / "p256_check.py", str(path)))

    expected = [public(k) for k in scalars]
    assert out["mul_base"] == expected
    assert out["mul"] == expected
    expected7 = [public(7 * k % ORDER) for k in base7]
    assert out["comb4"] == expected7
    assert out["comb5"] == expected7
    assert out["decode"] == list(decode.values())
    assert out["p_plus_p"] == public(10)
    assert out["p_plus_p_affine"] == public(10)
    assert out["p_minus_p"] == "identity"
    assert out["p_minus_p_affine"] == "identity"
    assert out["two_minus_p"] == public(5)
    assert out["identity_plus_p"] == public(5)
    assert out["two_plus_two_other_z"] == public(20)
    assert out["two_minus_two_other_z"] == "identity"
    assert out["two_z_differ"] is True
    assert out["M_on_curve"] == decompress(RFC9382_M)
    assert out["N_on_curve"] == decompress(RFC9382_N)
    assert out["identity_to_affine"] == "ValueError"
    assert out["order_times_g"] == "identity"


def test_p256_wycheproof_ecdh_points() -> None:
    """Every uncompressed public point: valid -> accepted with the right shared x;
    invalid -> rejected. Compressed points (one "acceptable", seven "invalid") are
    rejected because the wire format (PROTOCOL.md section 5.1) is uncompressed only."""
    data = load_shared_vectors("wycheproof_ecdh_secp256r1_ecpoint_test.json")
    path = shared_vector_path("wycheproof_ecdh_secp256r1_ecpoint_test.json")
    out = json.loads(run_micropython(MPY / "p256_wycheproof.py", str(path)))
    counts = {"valid": 0, "invalid": 0, "acceptable": 0}
    for group in data["testGroups"]:
        for t in group["tests"]:
            got = out[str(t["tcId"])]
            counts[t["result"]] += 1
            uncompressed = t["public"][:2] == "04" and len(t["public"]) == 130
            if t["result"] == "valid":
                assert uncompressed, t["tcId"]
                assert got == t["shared"], t["tcId"]
            else:
                # invalid: off-curve / wrong-curve points and bad encodings;
                # acceptable: a compressed point, which our format does not take.
                assert got == "rejected", (t["tcId"], t["comment"])
    assert counts == {"valid": 330, "invalid": 24, "acceptable": 1}
