"""P-256 arithmetic (Wycheproof ECDH points) and SPAKE2+ (RFC 9383 Appendix C)."""

from __future__ import annotations

import hashlib
import secrets
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from homeseal_protocol.crypto import p256, spake2plus
from homeseal_protocol.crypto.spake2plus import (
    Prover,
    Verifier,
    compute_verifier,
    derive_w0_w1,
    pbkdf_input,
)
from homeseal_protocol.errors import ConfirmationError, StateError
from tests.support import load_shared_vectors

# The identities stretched with the password (RFC 9383 §3.2), for tests about other things.
IDS = {"id_prover": b"P" * 10, "id_verifier": b"V" * 10}

# RFC 9383 Appendix C, P256-SHA256-HKDF-SHA256-HMAC-SHA256 (facts from the RFC).
RFC: dict[str, str | bytes] = {
    "Context": b"SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors",
    "idProver": b"client",
    "idVerifier": b"server",
    "w0": "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3",
    "w1": "7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba",
    "L": "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f"
    "00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd",
    "x": "d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539",
    "shareP": "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1"
    "de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727",
    "y": "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3",
    "shareV": "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb"
    "5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048",
    "Z": "04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d50091"
    "a0c5f1d3127f56813b5337f9e4e67e2ca633117a4fbd559946ab474356c41839",
    "V": "0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b951"
    "4b82b993da8a46e664f23db7c01edc87faa530db01c2ee405230b18997f16b68",
    "K_main": "4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29",
    "K_confirmP": "871ae3f7b78445e34438fb284504240239031c39d80ac23eb5ab9be5ad6db58a",
    "K_confirmV": "ccd53c7c1fa37b64a462b40db8be101cedcf838950162902054e644b400f1680",
    "confirmP": "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527",
    "confirmV": "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68",
    "K_shared": "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7",
}


def _hex(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else bytes.fromhex(value)


def _run_vector(v: dict[str, str | bytes]) -> None:
    context, id_p, id_v = (
        _hex(v["Context"]),
        _hex(v["idProver"]),
        _hex(v["idVerifier"]),
    )
    prover = Prover(context, id_p, id_v, _hex(v["w0"]), _hex(v["w1"]), x=int(v["x"], 16))
    verifier = Verifier(context, id_p, id_v, _hex(v["w0"]), _hex(v["L"]), y=int(v["y"], 16))
    share_p = prover.start()
    assert share_p == _hex(v["shareP"])
    share_v, confirm_v = verifier.respond(share_p)
    assert share_v == _hex(v["shareV"])
    assert confirm_v == _hex(v["confirmV"])
    confirm_p, k_shared = prover.finish(share_v, confirm_v)
    assert confirm_p == _hex(v["confirmP"])
    assert k_shared == _hex(v["K_shared"])
    assert verifier.finish(confirm_p) == k_shared
    # The key schedule on its own, from the RFC's Z and V.
    tt = spake2plus.transcript(
        context, id_p, id_v, share_p, share_v, _hex(v["Z"]), _hex(v["V"]), int(v["w0"], 16)
    )
    assert hashlib.sha256(tt).digest() == _hex(v["K_main"])
    assert spake2plus.key_schedule(tt) == (
        _hex(v["K_confirmP"]),
        _hex(v["K_confirmV"]),
        _hex(v["K_shared"]),
    )
    # L is w1·P.
    assert p256.multiply(int(v["w1"], 16), p256.G).encode() == _hex(v["L"])


def test_rfc9383_vector_embedded() -> None:
    _run_vector(RFC)


def test_rfc9383_vector_shared_file() -> None:
    data = load_shared_vectors("spake2plus_rfc9383_p256.json")
    assert bytes.fromhex(data["M"]) == spake2plus.M_BYTES
    assert bytes.fromhex(data["N"]) == spake2plus.N_BYTES
    for vector in data["vectors"]:
        v = dict(vector)
        for key in ("Context", "idProver", "idVerifier"):
            v[key] = v[key].encode()
        _run_vector(v)


def test_wrong_password_fails_both_confirmations() -> None:
    salt, iterations = b"s" * 16, 1000
    w0, w1 = derive_w0_w1(b"20231187", salt, iterations, **IDS)
    w0_wrong, w1_wrong = derive_w0_w1(b"20231188", salt, iterations, **IDS)
    w0_bytes, l_bytes = compute_verifier(b"20231187", salt, iterations, **IDS)
    assert int.from_bytes(w0_bytes, "big") == w0
    prover = Prover(b"ctx", b"P" * 10, b"V" * 10, w0_wrong, w1_wrong)
    verifier = Verifier(b"ctx", b"P" * 10, b"V" * 10, w0_bytes, l_bytes)
    share_v, confirm_v = verifier.respond(prover.start())
    with pytest.raises(ConfirmationError) as prover_err:
        prover.finish(share_v, confirm_v)
    # Even a confirmP made by an attacker who knows only the wrong w0/w1 fails.
    forged = hashlib.sha256(b"forged").digest()
    with pytest.raises(ConfirmationError) as verifier_err:
        verifier.finish(forged)
    for err in (prover_err.value, verifier_err.value):
        text = str(err) + repr(err.args)
        for secret in (w0, w1, w0_wrong, w1_wrong):
            assert f"{secret:x}" not in text
            assert str(secret) not in text
        assert w0_bytes.hex() not in text
        assert l_bytes.hex() not in text
    # The right password works with the same verifier data.
    good = Prover(b"ctx", b"P" * 10, b"V" * 10, w0, w1)
    verifier2 = Verifier(b"ctx", b"P" * 10, b"V" * 10, w0_bytes, l_bytes)
    share_v, confirm_v = verifier2.respond(good.start())
    confirm_p, k_shared = good.finish(share_v, confirm_v)
    assert verifier2.finish(confirm_p) == k_shared


def test_mismatched_identities_fail() -> None:
    w0, w1 = derive_w0_w1(b"20231187", b"s" * 16, 1000, **IDS)
    w0_bytes, l_bytes = compute_verifier(b"20231187", b"s" * 16, 1000, **IDS)
    prover = Prover(b"ctx", b"P" * 10, b"V" * 10, w0, w1)
    verifier = Verifier(b"ctx", b"Q" * 10, b"V" * 10, w0_bytes, l_bytes)
    share_v, confirm_v = verifier.respond(prover.start())
    with pytest.raises(ConfirmationError):
        prover.finish(share_v, confirm_v)


def test_pbkdf2_derivation() -> None:
    # RFC 9383 §3.2: w0s ‖ w1s = PBKDF(len(pw) ‖ pw ‖ len(idProver) ‖ idProver ‖
    # len(idVerifier) ‖ idVerifier), lengths as 8-byte little-endian integers.
    stretched = (
        struct.pack("<Q", 8) + b"20231187" + struct.pack("<Q", 0) + struct.pack("<Q", 4) + b"dev1"
    )
    assert pbkdf_input(b"20231187", b"", b"dev1") == stretched
    okm = hashlib.pbkdf2_hmac("sha256", stretched, b"x" * 16, 1000, 80)
    assert derive_w0_w1(b"20231187", b"x" * 16, 1000, id_prover=b"", id_verifier=b"dev1") == (
        int.from_bytes(okm[:40], "big") % p256.N,
        int.from_bytes(okm[40:], "big") % p256.N,
    )
    # The raw digits alone (the I2 finding) give other values; so does another device.
    raw = hashlib.pbkdf2_hmac("sha256", b"20231187", b"x" * 16, 1000, 80)
    assert int.from_bytes(raw[:40], "big") % p256.N != int.from_bytes(okm[:40], "big") % p256.N
    other = derive_w0_w1(b"20231187", b"x" * 16, 1000, id_prover=b"", id_verifier=b"dev2")
    assert other[0] != int.from_bytes(okm[:40], "big") % p256.N
    with pytest.raises(ValueError, match="positive"):
        derive_w0_w1(b"x", b"salt", 0, **IDS)


def test_state_machine_refuses_out_of_order() -> None:
    w0, w1 = derive_w0_w1(b"20231187", b"s" * 16, 1000, **IDS)
    w0_bytes, l_bytes = compute_verifier(b"20231187", b"s" * 16, 1000, **IDS)
    prover = Prover(b"c", b"p", b"v", w0, w1)
    verifier = Verifier(b"c", b"p", b"v", w0_bytes, l_bytes)
    with pytest.raises(StateError):
        prover.finish(bytes(65), bytes(32))
    with pytest.raises(StateError):
        verifier.finish(bytes(32))
    share_p = prover.start()
    with pytest.raises(StateError):
        prover.start()
    share_v, confirm_v = verifier.respond(share_p)
    with pytest.raises(StateError):
        verifier.respond(share_p)
    confirm_p, _ = prover.finish(share_v, confirm_v)
    with pytest.raises(StateError):
        prover.finish(share_v, confirm_v)
    verifier.finish(confirm_p)
    with pytest.raises(StateError):
        verifier.finish(confirm_p)


def _bad_points() -> list[tuple[str, bytes]]:
    good = p256.G.encode()
    p_bytes = p256.P.to_bytes(32, "big")
    return [
        ("wrong length", good[:64]),
        ("too long", good + b"\x00"),
        ("compressed", b"\x02" + good[1:33]),
        ("hybrid prefix", b"\x06" + good[1:]),
        ("all zero (no identity encoding)", bytes(65)),
        ("x = p", b"\x04" + p_bytes + good[33:]),
        ("y = p", b"\x04" + good[1:33] + p_bytes),
        ("off curve", good[:-1] + bytes([good[-1] ^ 1])),
    ]


@pytest.mark.parametrize(("case", "data"), _bad_points())
def test_point_validation(case: str, data: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by case
        p256.decode_point(data)
    w0, w1 = derive_w0_w1(b"20231187", b"s" * 16, 1000, **IDS)
    w0_bytes, l_bytes = compute_verifier(b"20231187", b"s" * 16, 1000, **IDS)
    with pytest.raises(ValueError):  # noqa: PT011
        Verifier(b"c", b"p", b"v", w0_bytes, l_bytes).respond(data)
    prover = Prover(b"c", b"p", b"v", w0, w1)
    prover.start()
    with pytest.raises(ValueError):  # noqa: PT011
        prover.finish(data, bytes(32))


def test_share_that_makes_z_identity_is_rejected() -> None:
    w0, w1 = derive_w0_w1(b"20231187", b"s" * 16, 1000, **IDS)
    w0_bytes, l_bytes = compute_verifier(b"20231187", b"s" * 16, 1000, **IDS)
    # shareP = w0·M gives X - w0·M = identity, so Z would be the identity.
    evil = p256.multiply(w0, spake2plus.M).encode()
    with pytest.raises(ValueError, match="identity"):
        Verifier(b"c", b"p", b"v", w0_bytes, l_bytes).respond(evil)
    prover = Prover(b"c", b"p", b"v", w0, w1)
    prover.start()
    with pytest.raises(ValueError, match="identity"):
        prover.finish(p256.multiply(w0, spake2plus.N).encode(), bytes(32))


def test_scalar_range_checked() -> None:
    with pytest.raises(ValueError, match="w0"):
        Prover(b"c", b"p", b"v", p256.N, 1)
    with pytest.raises(ValueError, match="x"):
        Prover(b"c", b"p", b"v", 1, 1, x=-1)


def test_p256_matches_cryptography() -> None:
    for _ in range(4):
        k = secrets.randbelow(p256.N - 1) + 1
        pub = ec.derive_private_key(k, ec.SECP256R1()).public_key()
        ours = p256.multiply(k, p256.G)
        assert ours.encode() == pub.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    assert p256.multiply(p256.N - 1, p256.G) == -p256.G
    assert p256.multiply(0, p256.G).is_identity
    assert (p256.G - p256.G).is_identity
    assert p256.G + p256.IDENTITY == p256.G
    assert p256.multiply(2, p256.G) == p256.G + p256.G
    with pytest.raises(ValueError, match="identity"):
        p256.IDENTITY.encode()


def test_wycheproof_ecdh_secp256r1_ecpoint() -> None:
    """Uncompressed points: accepted iff valid, and private·public gives `shared`.

    Compressed points (flag CompressedPoint; Wycheproof marks them acceptable or
    invalid) are always rejected: PROTOCOL §5.1 allows only 65-byte SEC1
    uncompressed points on the wire.
    """
    data = load_shared_vectors("wycheproof_ecdh_secp256r1_ecpoint_test.json")
    checked = {"valid": 0, "invalid": 0, "compressed": 0}
    for group in data["testGroups"]:
        for test in group["tests"]:
            public = bytes.fromhex(test["public"])
            label = f"tcId {test['tcId']} ({test['comment']})"
            if "CompressedPoint" in test["flags"]:
                with pytest.raises(ValueError):  # noqa: PT011
                    p256.decode_point(public)
                checked["compressed"] += 1
                continue
            if test["result"] == "invalid":
                with pytest.raises(ValueError):  # noqa: PT011
                    p256.decode_point(public)
                checked["invalid"] += 1
                continue
            assert test["result"] == "valid", label
            point = p256.decode_point(public)
            # cryptography agrees the point is fine.
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public)
            private = int.from_bytes(bytes.fromhex(test["private"]), "big") % p256.N
            shared = p256.multiply(private, point)
            assert shared.x is not None, label
            assert shared.x.to_bytes(32, "big") == bytes.fromhex(test["shared"]), label
            checked["valid"] += 1
    assert checked == {"valid": 330, "invalid": 17, "compressed": 8}


def test_p256_group_laws_and_encodings() -> None:
    a, b = secrets.randbelow(p256.N), secrets.randbelow(p256.N)
    assert p256.multiply(a, p256.G) + p256.multiply(b, p256.G) == p256.multiply(
        (a + b) % p256.N, p256.G
    )
    assert p256.multiply_add(a, p256.G, b, spake2plus.M) == (
        a * p256.G + p256.multiply(b, spake2plus.M)
    )
    assert -p256.IDENTITY == p256.IDENTITY
    assert repr(p256.IDENTITY) == "Point(identity)"
    assert "0x6b17d1f2" in repr(p256.G)
    assert len({p256.G, p256.multiply(1, p256.G)}) == 1
    with pytest.raises(AttributeError):
        p256.G.x = 1  # type: ignore[misc]
    with pytest.raises(ValueError, match="out of range"):
        p256.multiply(1 << 256, p256.G)
    with pytest.raises(ValueError, match="out of range"):
        p256.scalar_to_bytes(p256.N)
    assert p256.scalar_from_bytes(p256.N.to_bytes(32, "big")) == 0
    # Compressed decoding is only for the RFC constants, but it is strict too.
    assert p256.decode_compressed(spake2plus.M_BYTES).encode()[1:33] == spake2plus.M_BYTES[1:]
    with pytest.raises(ValueError, match="33 bytes"):
        p256.decode_compressed(b"\x04" + spake2plus.M_BYTES[1:])
    with pytest.raises(ValueError, match="below p"):
        p256.decode_compressed(b"\x02" + p256.P.to_bytes(32, "big"))
    with pytest.raises(ValueError, match="no point"):
        p256.decode_compressed(b"\x02" + (2).to_bytes(32, "big"))
