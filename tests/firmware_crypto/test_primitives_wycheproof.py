"""Every Wycheproof case for the firmware primitives, run on the MicroPython unix port.

The MicroPython script mpy/vectors.py reads the shared vector file itself and prints
what the firmware computed for each case; the assertions here name every failing tcId.

How "acceptable" and "invalid" cases are handled:

- X25519: all 254 acceptable cases (twist points, non-canonical u, low-order points,
  zero shared secrets) must give exactly Wycheproof's `shared` from x25519(): the
  function is RFC 7748's, which accepts every u. Key agreement goes through dh(), which
  rejects an all-zero result with ValueError; that is checked on every zero case and on
  a sample of the others (which dh() must accept).
- ChaCha20-Poly1305: there are no acceptable cases. Valid cases must encrypt to ct‖tag
  and decrypt back; invalid ones (modified tags, nonces not 96 bits long) must raise
  ValueError from decrypt() (and from encrypt() for a wrong nonce size).
- HKDF-SHA256: no acceptable cases; invalid ones (output longer than 255 * 32 bytes)
  raise ValueError.
- HMAC-SHA256: no acceptable cases; a tag is accepted when ct.equal(HMAC truncated to
  the tag size, tag): valid cases must match, the invalid (modified tag) ones must not.
- PBKDF2-HMAC-SHA256: all cases are valid (up to 80,000 iterations) and must match.

Should a later vector file add acceptable cases to these four, the assertions below
fail on the unexpected `result` value rather than silently picking a side.
"""

from __future__ import annotations

import pytest

from tests.firmware_crypto import MPY_SCRIPTS
from tests.support import load_shared_vectors, run_micropython, shared_vector_path

pytestmark = pytest.mark.micropython

FILES = {
    "x25519": "wycheproof_x25519_test.json",
    "chachapoly": "wycheproof_chacha20_poly1305_test.json",
    "hkdf": "wycheproof_hkdf_sha256_test.json",
    "hmac": "wycheproof_hmac_sha256_test.json",
    "pbkdf2": "wycheproof_pbkdf2_hmacsha256_test.json",
}


def _run(kind: str) -> tuple[list[tuple[dict, dict]], dict[int, list[str]]]:
    """(group, test) pairs from the file and the MicroPython output by tcId."""
    name = FILES[kind]
    data = load_shared_vectors(name)
    out = run_micropython(MPY_SCRIPTS / "vectors.py", kind, str(shared_vector_path(name)))
    results: dict[int, list[str]] = {}
    for line in out.splitlines():
        tc_id, *fields = line.split(" ")
        results[int(tc_id)] = fields
    cases = [(g, t) for g in data["testGroups"] for t in g["tests"]]
    assert len(cases) == data["numberOfTests"]
    missing = [t["tcId"] for _, t in cases if t["tcId"] not in results]
    assert not missing, f"MicroPython printed nothing for tcIds {missing}"
    return cases, results


def test_wycheproof_x25519() -> None:
    """x25519() returns the RFC result on all cases, acceptable ones included; dh()
    rejects exactly the all-zero results."""
    cases, results = _run("x25519")
    failures = []
    dh_checked = 0
    for _, t in cases:
        out, dh = results[t["tcId"]]
        if out != t["shared"]:
            failures.append(f"tcId {t['tcId']} ({t['result']}, {t['comment']}): got {out}")
        if dh != "skipped":
            dh_checked += 1
            expected = "rejected" if int(t["shared"], 16) == 0 else "ok"
            if dh != expected:
                failures.append(f"tcId {t['tcId']}: dh() {dh}, expected {expected}")
    assert not failures, "\n".join(failures)
    zero_cases = sum(1 for _, t in cases if int(t["shared"], 16) == 0)
    assert zero_cases > 0
    assert dh_checked > zero_cases


def test_wycheproof_chacha20_poly1305() -> None:
    """Valid: encrypt gives ct‖tag, decrypt gives msg. Invalid: decrypt raises ValueError."""
    cases, results = _run("chachapoly")
    failures = []
    for g, t in cases:
        enc, dec = results[t["tcId"]]
        label = f"tcId {t['tcId']} ({t['comment']})"
        if t["result"] == "valid":
            if enc != t["ct"] + t["tag"]:
                failures.append(f"{label}: encrypt gave {enc}")
            if dec != (t["msg"] or "-"):
                failures.append(f"{label}: decrypt gave {dec}")
        else:
            assert t["result"] == "invalid", f"{label}: unexpected result {t['result']}"
            if dec != "ValueError":
                failures.append(f"{label}: decrypt accepted a bad case: {dec}")
            if g["ivSize"] != 96 and enc != "ValueError":
                failures.append(f"{label}: encrypt accepted a {g['ivSize']}-bit nonce")
    assert not failures, "\n".join(failures)


def test_wycheproof_hkdf_sha256() -> None:
    """Valid cases give okm; invalid (too long) ones raise ValueError."""
    cases, results = _run("hkdf")
    failures = []
    for _, t in cases:
        (out,) = results[t["tcId"]]
        assert t["result"] in ("valid", "invalid"), t
        expected = t["okm"] if t["result"] == "valid" else "ValueError"
        if out != expected:
            failures.append(f"tcId {t['tcId']} ({t['result']}, {t['comment']}): got {out[:80]}")
    assert not failures, "\n".join(failures)


def test_wycheproof_hmac_sha256() -> None:
    """Valid tags match under ct.equal (truncated to the tag size); modified ones don't."""
    cases, results = _run("hmac")
    failures = []
    for _, t in cases:
        full, verdict = results[t["tcId"]]
        tag = t["tag"]
        assert t["result"] in ("valid", "invalid"), t
        if t["result"] == "valid":
            if full[: len(tag)] != tag or verdict != "match":
                failures.append(f"tcId {t['tcId']}: HMAC {full}, verdict {verdict}")
        elif verdict != "mismatch":
            failures.append(f"tcId {t['tcId']} ({t['comment']}): modified tag accepted")
    assert not failures, "\n".join(failures)


def test_wycheproof_pbkdf2_hmac_sha256() -> None:
    """All cases are valid and must give dk."""
    cases, results = _run("pbkdf2")
    assert all(t["result"] == "valid" for _, t in cases)
    failures = [
        f"tcId {t['tcId']} ({t['iterationCount']} iterations): got {results[t['tcId']][0]}"
        for _, t in cases
        if results[t["tcId"]][0] != t["dk"]
    ]
    assert not failures, "\n".join(failures)
