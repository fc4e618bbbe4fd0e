"""ECDSA P-256 / SHA-256 verification (homeseal/ecdsa.py), the check of a signed
firmware release, on the Cortex-M3 port and the unix port alike.

Wycheproof's ecdsa_secp256r1_sha256 vectors in their IEEE P1363 form (r || s, 64
bytes), the form a release manifest carries: so no DER parsing is involved, and the
DER file's encoding cases do not apply. Among the invalid ones: r or s of 0, n, or
out of range, r + n, s + n, the point at infinity, and signatures that only a
verifier with a carry or reduction bug accepts.
"""

from __future__ import annotations

import pytest

from tests.qemu.conftest import RunBoth
from tests.support import load_shared_vectors

pytestmark = [pytest.mark.qemu, pytest.mark.micropython]  # run_both: the board and the unix port

VECTORS = "wycheproof_ecdsa_secp256r1_sha256_p1363_test.json"


def test_wycheproof_ecdsa_secp256r1_sha256(run_both: RunBoth) -> None:
    data = load_shared_vectors(VECTORS)
    cases: list[tuple[bytes, bytes, bytes]] = []
    expected = ""
    for group in data["testGroups"]:
        public = bytes.fromhex(group["publicKey"]["uncompressed"])
        for t in group["tests"]:
            cases.append((public, bytes.fromhex(t["msg"]), bytes.fromhex(t["sig"])))
            expected += "1" if t["result"] == "valid" else "0"
    assert (expected.count("1"), expected.count("0")) == (173, 89)
    got = run_both("ecdsa.py", cases, timeout=1800).strip()
    wrong = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    assert not wrong, [data_comment(data, i) for i in wrong[:10]]


def test_bad_keys_and_lengths_are_refused(run_both: RunBoth) -> None:
    data = load_shared_vectors(VECTORS)
    group = data["testGroups"][0]
    public = bytes.fromhex(group["publicKey"]["uncompressed"])
    valid = next(t for t in group["tests"] if t["result"] == "valid")
    msg, sig = bytes.fromhex(valid["msg"]), bytes.fromhex(valid["sig"])
    off_curve = public[:-1] + bytes([public[-1] ^ 1])
    cases = [
        (public, msg, sig),  # the control: valid
        (public, msg + b"x", sig),  # another message
        (public, msg, sig[:-1]),  # 63 bytes
        (public, msg, sig + b"\x00"),  # 65 bytes
        (public, msg, b""),
        (off_curve, msg, sig),
        (b"\x02" + public[1:33], msg, sig),  # compressed keys are not taken
        (b"\x04" + bytes(64), msg, sig),
    ]
    assert run_both("ecdsa.py", cases, timeout=600).strip() == "10000000"


def data_comment(data: dict[str, object], index: int) -> str:
    """The Wycheproof case at `index` (in file order), for a failure message."""
    tests = [t for g in data["testGroups"] for t in g["tests"]]  # type: ignore[attr-defined]
    t = tests[index]
    return f"tcId {t['tcId']}: {t['comment']} ({t['result']})"
