"""The same firmware modules under CPython (tests/cpython_shim), checked against
`cryptography`, `hmac` and `hashlib` on random inputs.

The shim runs the viper functions as plain Python, so these tests check the algorithms
and their explicit 32-bit masking (the shim's word views refuse values >= 2**32); the
MicroPython suites check the same code compiled by viper.
"""

from __future__ import annotations

import hashlib
import hmac
import random

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.firmware_crypto import import_firmware

chachapoly = import_firmware("chachapoly")
ct = import_firmware("ct")
kdf = import_firmware("kdf")
x25519 = import_firmware("x25519")


def _rand(rng: random.Random, n: int) -> bytes:
    return rng.randbytes(n)


def test_aead_matches_cryptography() -> None:
    """Random key/nonce/AD/plaintext (lengths 0..300): same ciphertext and tag as
    `cryptography`, decrypt inverts it, and a tampered tag, ciphertext or AD raises."""
    rng = random.Random(8439)
    for i in range(2000):
        key, nonce = _rand(rng, 32), _rand(rng, 12)
        ad, pt = _rand(rng, rng.randint(0, 300)), _rand(rng, rng.randint(0, 300))
        expected = ChaCha20Poly1305(key).encrypt(nonce, pt, ad)
        kind = (bytes, bytearray, memoryview)[i % 3]
        sealed = chachapoly.encrypt(kind(key), kind(nonce), kind(ad), kind(pt))
        assert sealed == expected, f"case {i}"
        assert chachapoly.decrypt(key, nonce, ad, kind(sealed)) == pt
        tampered = bytearray(sealed)
        tampered[rng.randrange(len(tampered))] ^= 1 << rng.randrange(8)
        with pytest.raises(ValueError, match="authentication failed"):
            chachapoly.decrypt(key, nonce, ad, tampered)
        if ad:
            bad_ad = bytearray(ad)
            bad_ad[rng.randrange(len(ad))] ^= 0x80
            with pytest.raises(ValueError, match="authentication failed"):
                chachapoly.decrypt(key, nonce, bad_ad, sealed)


def test_poly1305_extreme_values() -> None:
    """Keys and messages of all-ones bytes drive every limb to its maximum (the carries
    and the final h >= p selection); the tag must still match `cryptography`."""
    for key in (b"\xff" * 32, b"\x00" * 32, bytes(16) + b"\xff" * 16):
        for n in (0, 1, 15, 16, 17, 64, 255, 1024):
            for fill in (b"\xff", b"\x00"):
                msg = fill * n
                expected = ChaCha20Poly1305(key).encrypt(bytes(12), msg, msg[:33])
                assert chachapoly.encrypt(key, bytes(12), msg[:33], msg) == expected


def test_x25519_matches_cryptography() -> None:
    """Random private keys against random and generated public keys; public_key too."""
    rng = random.Random(7748)
    for _ in range(300):
        a, b = _rand(rng, 32), _rand(rng, 32)
        pub_b = X25519PrivateKey.from_private_bytes(b).public_key().public_bytes_raw()
        assert x25519.public_key(b) == pub_b
        expected = X25519PrivateKey.from_private_bytes(a).exchange(
            X25519PublicKey.from_public_bytes(pub_b)
        )
        assert x25519.dh(a, pub_b) == expected
        u = _rand(rng, 32)  # any 32 bytes is a u-coordinate (RFC 7748 section 5)
        try:
            theirs = X25519PrivateKey.from_private_bytes(a).exchange(
                X25519PublicKey.from_public_bytes(u)
            )
        except ValueError:  # cryptography rejects an all-zero result
            theirs = bytes(32)
        assert x25519.x25519(a, u) == theirs


def test_x25519_generate_and_agree() -> None:
    a, b = x25519.generate_private(), x25519.generate_private()
    assert len(a) == 32
    assert a != b
    assert x25519.dh(a, x25519.public_key(b)) == x25519.dh(b, x25519.public_key(a))
    with pytest.raises(ValueError, match="all zero"):
        x25519.dh(a, bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        x25519.x25519(a, bytes(31))


def test_hmac_hkdf_pbkdf2_match_stdlib() -> None:
    """HMAC (keys 0..200 bytes, messages 0..300), HKDF (salt may be empty, lengths up
    to 255 * 32) and PBKDF2 against hmac / cryptography / hashlib."""
    rng = random.Random(5869)
    for _ in range(800):
        key, msg = _rand(rng, rng.randint(0, 200)), _rand(rng, rng.randint(0, 300))
        assert kdf.hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()
    for _ in range(300):
        salt, ikm = _rand(rng, rng.choice((0, 16, 32, 80))), _rand(rng, rng.randint(1, 80))
        info, length = _rand(rng, rng.randint(0, 40)), rng.choice((1, 31, 32, 33, 64, 80, 8160))
        expected = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
        assert kdf.hkdf(salt, ikm, info, length) == expected
    with pytest.raises(ValueError, match="hkdf length"):
        kdf.hkdf(b"", b"ikm", b"", 8161)
    for _ in range(20):
        pw, salt = _rand(rng, rng.randint(0, 80)), _rand(rng, rng.randint(0, 32))
        iters, dklen = rng.randint(1, 50), rng.choice((16, 32, 33, 80))
        expected = hashlib.pbkdf2_hmac("sha256", pw, salt, iters, dklen)
        assert kdf.pbkdf2_hmac_sha256(pw, salt, iters, dklen) == expected
    assert kdf.pbkdf2_hmac_sha256(b"123456", b"s" * 16, 1000, 80) == hashlib.pbkdf2_hmac(
        "sha256", b"123456", b"s" * 16, 1000, 80
    )


def test_ct_equal() -> None:
    rng = random.Random(1)
    for _ in range(300):
        a = _rand(rng, rng.randint(0, 64))
        b = bytearray(a)
        assert ct.equal(a, b)
        assert ct.equal(memoryview(a), a)
        if a:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            assert not ct.equal(a, b)
        assert not ct.equal(a, a + b"\x00")
