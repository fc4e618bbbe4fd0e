"""The SPAKE2+ Verifier (RFC 9383, P-256) on the Cortex-M3 port.

P-256 runs on mpz big integers, whose digits are 16-bit on this port (32-bit on
the unix port's 64-bit host), so every carry path differs from the unix build.
"""

from __future__ import annotations

import json

import pytest

from tests import reference_p256 as ref
from tests.qemu.conftest import RunBoth
from tests.support import ROOT

pytestmark = [pytest.mark.qemu, pytest.mark.micropython]  # run_both: the board and the unix port

# RFC 9383 appendix C (P256-SHA256-HKDF-SHA256-HMAC-SHA256).
CONTEXT = b"SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors"
ID_PROVER = b"client"
ID_VERIFIER = b"server"
W0 = "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3"
L = (
    "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f"
    "00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd"
)
Y = "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3"
SHARE_P = (
    "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1"
    "de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727"
)
SHARE_V = (
    "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb"
    "5cc1ca7494db39e82ff2f50665255d76173e09986ab46742c798a9a68437b048"
)
CONFIRM_P = "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527"
CONFIRM_V = "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68"
K_SHARED = "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7"

# P-256 and RFC 9382's M, to build a shareP that makes Z the identity.
M = (
    0x886E2F97ACE46E55BA9DD7242579F2993B64E16EF3DCAB95AFD497333D8FA12F,
    0x5FF355163E43CE224E0B0E65FF02AC8E5C7BE09419C785E0CA547D55A12E2D20,
)


def _case(kind: str, share_p: bytes, confirm_p: str = CONFIRM_P) -> tuple[bytes | str, ...]:
    return (
        kind, CONTEXT, ID_PROVER, ID_VERIFIER, bytes.fromhex(W0), bytes.fromhex(L),
        share_p, bytes.fromhex(Y), bytes.fromhex(confirm_p),
    )  # fmt: skip


def test_rfc9383_verifier(run_both: RunBoth) -> None:
    wrong_confirm = f"{int(CONFIRM_P[:2], 16) ^ 1:02x}{CONFIRM_P[2:]}"
    cases = [
        _case("ok", bytes.fromhex(SHARE_P)),
        _case("badconfirm", bytes.fromhex(SHARE_P), wrong_confirm),
    ]
    out = run_both("spake2plus.py", cases, timeout=300).splitlines()
    assert out == [
        f"{SHARE_V}|{CONFIRM_V}|{K_SHARED}|ERR:RuntimeError",
        f"{SHARE_V}|{CONFIRM_V}|ERR:ValueError|ERR:RuntimeError",
    ]


def test_invalid_share_p(run_both: RunBoth) -> None:
    good = bytes.fromhex(SHARE_P)
    bad = [
        good[:-1],  # short
        good + b"\x00",  # long
        b"\x02" + good[1:33],  # compressed: not accepted on the wire
        b"\x03" + good[1:],  # wrong prefix
        good[:33]
        + ((int.from_bytes(good[33:], "big") + 1) % ref.P).to_bytes(32, "big"),  # off curve
        b"\x04" + bytes(64),  # (0, 0): not on the curve, the usual stand-in for the identity
        b"\x04" + ref.P.to_bytes(32, "big") + good[33:],  # coordinate == p
        ref.encode(ref.mul(int(W0, 16), M)),  # shareP = w0*M: Z and V would be the identity
    ]
    cases = [_case("badshare", b) for b in bad]
    out = run_both("spake2plus.py", cases, timeout=300).splitlines()
    assert out == ["ERR:ValueError|ERR:RuntimeError"] * len(bad)


def test_appendix_a_pairing_revision_2(run_both: RunBoth) -> None:
    """PROTOCOL.md Appendix A's pairing on the board: the Context it builds (label ‖
    controller id ‖ SHA-256 of the PBKDF parameter exchange), shareV, confirmV, K_shared,
    the static-key sealing, and a wrong confirmP refused (I2/I3)."""
    ex = json.loads((ROOT / "docs" / "examples" / "protocol_v1.json").read_text())
    assert ex.get("revision") == 2, "Appendix A is not regenerated yet (revision 2)"
    p, keys = ex["pairing"], ex["keys"]
    msgs = {m["name"]: bytes.fromhex(m["body"]) for m in p["messages"]}
    assert p["idProver"] == ""
    h = bytes.fromhex
    case = (
        p["context_label"].encode(), h(keys["controller_id"]), h(keys["device_id"]),
        msgs["PBKDF_PARAM_REQUEST"], msgs["PBKDF_PARAM_RESPONSE"], h(p["w0"]), h(p["L"]),
        h(p["shareP"]), h(p["y"]), h(p["confirmP"]), h(p["sealed_controller_pub"]),
        h(keys["device_static_pub"]),
    )  # fmt: skip
    out = run_both("pairing_example.py", [case], timeout=300).splitlines()
    assert out == [
        f"context {p['context']}",
        f"shareV {p['shareV']}",
        f"confirmV {p['confirmV']}",
        f"K_shared {p['K_shared']}",
        f"controller s.pub {keys['controller_static_pub']}",
        f"sealed device s.pub {p['sealed_device_pub']}",
        "wrong confirmP ERR:ValueError",
    ]
