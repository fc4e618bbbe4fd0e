"""X25519 on the Cortex-M3 port: RFC 7748 examples and a Wycheproof sample.

The sample takes a quota of every Wycheproof flag, weighted towards the cases
written to hit carries and reductions (EdgeCaseMultiplication, EdgeCaseShared,
EdgeCasePrivateKey). One ladder costs ~40 M guest instructions (~0.15 s of
QEMU), so RFC 7748's 1,000-iteration check stays on the unix port.
"""

from __future__ import annotations

import pytest

from tests.qemu.conftest import RunBoth
from tests.support import load_shared_vectors

pytestmark = [pytest.mark.qemu, pytest.mark.micropython]  # run_both: the board and the unix port

ZERO = "00" * 32
# RFC 7748 section 5.2: (scalar, u, output).
RFC7748 = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
    # One iteration of the section 5.2 loop: k = u = 9.
    (
        "09" + "00" * 31,
        "09" + "00" * 31,
        "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
    ),
]
# RFC 7748 section 6.1.
ALICE_PRIV = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
ALICE_PUB = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
BOB_PRIV = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"
BOB_PUB = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
BASE = "09" + "00" * 31

# Cases per Wycheproof flag; flags not listed get DEFAULT_QUOTA.
QUOTA = {"EdgeCaseMultiplication": 16, "EdgeCaseShared": 14, "EdgeCasePrivateKey": 7}
DEFAULT_QUOTA = 4


def test_rfc7748(run_both: RunBoth) -> None:
    cases = [(bytes.fromhex(k), bytes.fromhex(u)) for k, u, _ in RFC7748]
    cases += [
        (bytes.fromhex(ALICE_PRIV), bytes.fromhex(BASE)),
        (bytes.fromhex(BOB_PRIV), bytes.fromhex(BASE)),
        (bytes.fromhex(ALICE_PRIV), bytes.fromhex(BOB_PUB)),
        (bytes.fromhex(BOB_PRIV), bytes.fromhex(ALICE_PUB)),
        # A low-order point (u = 0): the RFC's all-zero output, which dh() refuses.
        (bytes.fromhex(ALICE_PRIV), bytes(32)),
    ]
    expected = [f"{out}|dh-ok" for *_, out in RFC7748]
    expected += [f"{ALICE_PUB}|dh-ok", f"{BOB_PUB}|dh-ok", f"{SHARED}|dh-ok", f"{SHARED}|dh-ok"]
    expected.append(f"{ZERO}|ERR:ValueError")
    assert run_both("x25519.py", cases).splitlines() == expected


def test_wycheproof_sample(run_both: RunBoth) -> None:
    data = load_shared_vectors("wycheproof_x25519_test.json")
    taken: dict[str, int] = {}
    cases, expected, ids = [], [], []
    for group in data["testGroups"]:
        for t in group["tests"]:
            flags = t["flags"] or ["Normal"]
            if not any(taken.get(f, 0) < QUOTA.get(f, DEFAULT_QUOTA) for f in flags):
                continue
            for f in flags:
                taken[f] = taken.get(f, 0) + 1
            assert t["result"] in ("valid", "acceptable")
            cases.append((bytes.fromhex(t["private"]), bytes.fromhex(t["public"])))
            # Acceptable cases (twist, non-canonical u, low order) follow the RFC:
            # the output is computed as specified, and dh() refuses only all-zero.
            verdict = "ERR:ValueError" if t["shared"] == ZERO else "dh-ok"
            expected.append(f"{t['shared']}|{verdict}")
            ids.append(t["tcId"])
    assert set(taken) >= {"Twist", "LowOrderPublic", "NonCanonicalPublic", "EdgeCaseMultiplication"}
    out = run_both("x25519.py", cases, timeout=300).splitlines()
    assert len(out) == len(expected)
    wrong = [i for i, a, b in zip(ids, out, expected, strict=True) if a != b]
    assert not wrong, f"Wycheproof tcIds differing: {wrong}"
