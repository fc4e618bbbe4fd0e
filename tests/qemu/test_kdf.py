"""HMAC-SHA256, HKDF-SHA256, PBKDF2-HMAC-SHA256 and ct.equal on the Cortex-M3 port.

RFC 5869's SHA-256 examples and RFC 4231 case 2 are embedded; every Wycheproof
HMAC-SHA256 and HKDF-SHA256 case runs (hashing is in C, so they are cheap), and
the PBKDF2 cases with at most 4096 iterations, one per output length.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tests.qemu.conftest import RunBoth
from tests.support import load_shared_vectors

pytestmark = [pytest.mark.qemu, pytest.mark.micropython]  # run_both: the board and the unix port

# RFC 5869 appendix A.1-A.3: (ikm, salt, info, length, okm).
RFC5869 = [
    (
        bytes([0x0B] * 22),
        bytes(range(13)),
        bytes(range(0xF0, 0xFA)),
        42,
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
    ),
    (
        bytes(range(0x50)),
        bytes(range(0x60, 0xB0)),
        bytes(range(0xB0, 0x100)),
        82,
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87",
    ),
    (
        bytes([0x0B] * 22),
        b"",
        b"",
        42,
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
    ),
]
# RFC 4231 test case 2.
RFC4231_2 = (
    b"Jefe",
    b"what do ya want for nothing?",
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
)


def test_rfc_examples(run_both: RunBoth) -> None:
    cases: list[tuple[bytes | str | int, ...]] = [
        ("hkdf", salt, ikm, info, size) for ikm, salt, info, size, _ in RFC5869
    ]
    key, msg, tag = RFC4231_2
    cases.append(("hmac", key, msg, bytes.fromhex(tag), 0))
    # 1 iteration: PBKDF2's first block is a single HMAC, a check that needs no vector file.
    cases.append(("pbkdf2", b"passwd", b"salt", 1, 64))
    out = run_both("kdf.py", cases).splitlines()
    assert out[:3] == [okm for *_, okm in RFC5869]
    assert out[3] == tag + "|1"
    assert out[4] == hashlib.pbkdf2_hmac("sha256", b"passwd", b"salt", 1, 64).hex()
    assert out[4].startswith("55ac046e56e3089fec1691c22544b605")  # RFC 7914 section 11


def test_wycheproof_hmac_sha256(run_both: RunBoth) -> None:
    data = load_shared_vectors("wycheproof_hmac_sha256_test.json")
    cases, expected = [], []
    for group in data["testGroups"]:
        for t in group["tests"]:
            key, msg, tag = (bytes.fromhex(t[k]) for k in ("key", "msg", "tag"))
            full = hmac.new(key, msg, hashlib.sha256).hexdigest()
            valid = t["result"] == "valid"
            assert full.startswith(t["tag"]) == valid, t["tcId"]
            cases.append(("hmac", key, msg, tag, 0))
            expected.append(f"{full}|{int(valid)}")
    assert len(cases) == 174
    assert run_both("kdf.py", cases).splitlines() == expected


def test_wycheproof_hkdf_sha256(run_both: RunBoth) -> None:
    data = load_shared_vectors("wycheproof_hkdf_sha256_test.json")
    cases, expected = [], []
    for group in data["testGroups"]:
        for t in group["tests"]:
            ikm, salt, info = (bytes.fromhex(t[k]) for k in ("ikm", "salt", "info"))
            cases.append(("hkdf", salt, ikm, info, t["size"]))
            expected.append(t["okm"] if t["result"] == "valid" else "ERR:ValueError")
    assert "ERR:ValueError" in expected  # the SizeTooLarge cases
    assert run_both("kdf.py", cases).splitlines() == expected


def test_wycheproof_pbkdf2_sample(run_both: RunBoth) -> None:
    data = load_shared_vectors("wycheproof_pbkdf2_hmacsha256_test.json")
    cases, expected, lengths = [], [], set()
    for group in data["testGroups"]:
        for t in group["tests"]:
            if t["iterationCount"] > 4096 or (t["dkLen"] in lengths and t["iterationCount"] > 1):
                continue
            lengths.add(t["dkLen"])
            pw, salt = bytes.fromhex(t["password"]), bytes.fromhex(t["salt"])
            cases.append(("pbkdf2", pw, salt, t["iterationCount"], t["dkLen"]))
            expected.append(t["dk"])
    assert len(cases) >= 5  # 1 iteration, and 16 / 32 / 42 / 64 / 65-byte outputs
    assert run_both("kdf.py", cases).splitlines() == expected
