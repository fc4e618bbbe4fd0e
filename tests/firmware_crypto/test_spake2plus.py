"""Firmware SPAKE2+ Verifier (homeseal/spake2plus.py) on the real MicroPython unix port.

RFC 9383 Appendix C (P256-SHA256-HKDF-SHA256-HMAC-SHA256) is embedded below and
also read from ../shared/vectors. A CPython Prover written here from the RFC, with
textbook affine arithmetic (independent of the firmware's Jacobian code), runs a
full attempt against the Verifier with a random y.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from tests import reference_p256 as ref
from tests.support import load_shared_vectors, micropython_env, micropython_path, run_micropython

pytestmark = pytest.mark.micropython

MPY = Path(__file__).parent / "mpy"

# RFC 9383 Appendix C, SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256.
RFC9383 = {
    "Context": "SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors",
    "idProver": "client",
    "idVerifier": "server",
    "w0": "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3",
    "w1": "7e945f34d78785b8a3ef44d0df5a1a97d6b3b460409a345ca7830387a74b1dba",
    "L": "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f00bfedcbd09b2400"
    "142d40a14f2064ef31dfaa903b91d1faea7093d835966efd",
    "x": "d1232c8e8693d02368976c174e2088851b8365d0d79a9eee709c6a05a2fad539",
    "shareP": "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5"
    "966afadfdd95a6e4591d171056b333dab97a79c7193e341727",
    "y": "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3",
    "shareV": "04c0f65da0d11927bdf5d560c69e1d7d939a05b0e88291887d679fcadea75810fb5cc1ca7494db39"
    "e82ff2f50665255d76173e09986ab46742c798a9a68437b048",
    "Z": "04bbfce7dd7f277819c8da21544afb7964705569bdf12fb92aa388059408d50091a0c5f1d3127f56813b53"
    "37f9e4e67e2ca633117a4fbd559946ab474356c41839",
    "V": "0458bf27c6bca011c9ce1930e8984a797a3419797b936629a5a937cf2f11c8b9514b82b993da8a46e664f2"
    "3db7c01edc87faa530db01c2ee405230b18997f16b68",
    "K_main": "4c59e1ccf2cfb961aa31bd9434478a1089b56cd11542f53d3576fb6c2a438a29",
    "K_confirmP": "871ae3f7b78445e34438fb284504240239031c39d80ac23eb5ab9be5ad6db58a",
    "K_confirmV": "ccd53c7c1fa37b64a462b40db8be101cedcf838950162902054e644b400f1680",
    "confirmP": "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527",
    "confirmV": "9747bcc4f8fe9f63defee53ac9b07876d907d55047e6ff2def2e7529089d3e68",
    "K_shared": "0c5f8ccd1413423a54f6c1fb26ff01534a87f893779c6e68666d772bfd91f3e7",
}
CHECKED = ("shareV", "Z", "V", "K_main", "K_confirmP", "K_confirmV", "confirmV", "K_shared")

# --- a reference Prover, straight from RFC 9383, on the textbook arithmetic ---------


M = ref.decode(
    bytes.fromhex(
        "04886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
        "5ff355163e43ce224e0b0e65ff02ac8e5c7be09419c785e0ca547d55a12e2d20"
    )
)
N = ref.decode(
    bytes.fromhex(
        "04d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"
        "07d60aa6bfade45008a636337f5168c64d9bd36034808cd564490b1e656edbe7"
    )
)


def _hkdf(ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


class ReferenceProver:
    def __init__(self, context: bytes, id_p: bytes, id_v: bytes, w0: int, w1: int) -> None:
        self.context, self.id_p, self.id_v, self.w0, self.w1 = context, id_p, id_v, w0, w1
        self.x = secrets.randbelow(ref.ORDER - 1) + 1
        self.shareP = ref.encode(ref.add(ref.mul(self.x, ref.G), ref.mul(w0, M)))

    def finish(self, shareV: bytes, confirmV: bytes) -> tuple[bytes, bytes]:
        """(confirmP, K_shared); AssertionError if confirmV does not verify."""
        t = ref.add(ref.decode(shareV), ref.mul(ref.ORDER - self.w0, N))
        Z, V = ref.encode(ref.mul(self.x, t)), ref.encode(ref.mul(self.w1, t))
        tt = b""
        for f in (
            self.context,
            self.id_p,
            self.id_v,
            ref.encode(M),
            ref.encode(N),
            self.shareP,
            shareV,
            Z,
            V,
            self.w0.to_bytes(32, "big"),
        ):
            tt += len(f).to_bytes(8, "little") + f
        k_main = hashlib.sha256(tt).digest()
        conf = _hkdf(k_main, b"ConfirmationKeys", 64)
        expected = hmac.new(conf[32:], self.shareP, hashlib.sha256).digest()
        assert hmac.compare_digest(expected, confirmV), "confirmV did not verify"
        confirmP = hmac.new(conf[:32], shareV, hashlib.sha256).digest()
        return confirmP, _hkdf(k_main, b"SharedKey", 32)


# --- tests --------------------------------------------------------------------------


def _run_vector(tmp_path: Path, vector: dict[str, str]) -> dict[str, str]:
    path = tmp_path / "vector.json"
    path.write_text(json.dumps(vector))
    out: dict[str, str] = json.loads(run_micropython(MPY / "spake_vector.py", str(path)))
    return out


def test_rfc9383_vector_embedded(tmp_path: Path) -> None:
    out = _run_vector(tmp_path, RFC9383)
    for name in CHECKED:
        assert out[name] == RFC9383[name], name
    assert out["respond_shareV"] == RFC9383["shareV"]
    assert out["Verifier_K_shared_from_derive"] == RFC9383["K_shared"]


def test_rfc9383_vector_shared_file(tmp_path: Path) -> None:
    data = load_shared_vectors("spake2plus_rfc9383_p256.json")
    assert data["M"] == "02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f"
    assert data["N"] == "03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49"
    for vector in data["vectors"]:
        out = _run_vector(tmp_path, vector)
        for name in CHECKED:
            assert out[name] == vector[name], name


def test_reference_prover_reproduces_rfc_vector() -> None:
    """The CPython Prover below is itself right: with the RFC's x it gives the RFC's values."""
    text = ("Context", "idProver", "idVerifier")
    v = {k: bytes.fromhex(val) for k, val in RFC9383.items() if k not in text}
    prover = ReferenceProver(
        RFC9383["Context"].encode(),
        b"client",
        b"server",
        int(RFC9383["w0"], 16),
        int(RFC9383["w1"], 16),
    )
    prover.x = int(RFC9383["x"], 16)
    prover.shareP = ref.encode(ref.add(ref.mul(prover.x, ref.G), ref.mul(prover.w0, M)))
    assert prover.shareP == v["shareP"]
    assert ref.encode(ref.mul(prover.w1, ref.G)) == v["L"]
    assert prover.finish(v["shareV"], v["confirmV"]) == (v["confirmP"], v["K_shared"])


def _attempt(w0: int, w1_prover: int, w0_prover: int, L: bytes) -> tuple[bytes | None, str]:
    """Run one attempt: a Prover holding (w0_prover, w1_prover) against the device's (w0, L)."""
    ctx, id_p, id_v = b"HomeSeal v1 pairing", secrets.token_bytes(10), secrets.token_bytes(10)
    prover = ReferenceProver(ctx, id_p, id_v, w0_prover, w1_prover)
    args = [a.hex() for a in (ctx, id_p, id_v, w0.to_bytes(32, "big"), L)]
    with subprocess.Popen(
        [str(micropython_path()), str(MPY / "spake_flow.py"), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=micropython_env(),
        text=True,
    ) as proc:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(prover.shareP.hex() + "\n")
        proc.stdin.flush()
        shareV, confirmV = (bytes.fromhex(h) for h in proc.stdout.readline().split())
        try:
            confirmP, k_shared = prover.finish(shareV, confirmV)
        except AssertionError:
            # The Prover refuses: send it a wrong confirmP anyway to see the Verifier refuse too.
            confirmP, k_shared = bytes(32), None
        out, err = proc.communicate(confirmP.hex() + "\n", timeout=60)
        assert proc.returncode == 0, err
    return k_shared, out.strip()


def test_full_attempt_with_random_y() -> None:
    w0, w1 = secrets.randbelow(ref.ORDER - 1) + 1, secrets.randbelow(ref.ORDER - 1) + 1
    L = ref.encode(ref.mul(w1, ref.G))
    k_shared, out = _attempt(w0, w1, w0, L)
    assert k_shared is not None
    assert out == "K_shared " + k_shared.hex()


def test_wrong_password_fails_both_ways() -> None:
    w0, w1 = secrets.randbelow(ref.ORDER - 1) + 1, secrets.randbelow(ref.ORDER - 1) + 1
    L = ref.encode(ref.mul(w1, ref.G))
    # A Prover with another setup code (other w0 and w1) cannot verify confirmV ...
    k_shared, out = _attempt(w0, w1 + 1, w0 + 1, L)
    assert k_shared is None
    # ... and the Verifier refuses the confirmP it gets.
    assert out == "ValueError"
    # Right w0 but wrong w1 (someone who stole w0 but not L's discrete log) fails as well.
    k_shared, out = _attempt(w0, w1 + 1, w0, L)
    assert (k_shared, out) == (None, "ValueError")


def test_misuse_and_bad_points(tmp_path: Path) -> None:
    path = tmp_path / "vector.json"
    path.write_text(json.dumps(RFC9383))
    lines = run_micropython(MPY / "spake_negative.py", str(path)).split("\n")
    got = dict(line.split(" ", 1) for line in lines if line)
    expected = {
        f"shareP_{n}": "ValueError"
        for n in (
            "short",
            "long",
            "empty",
            "identity_byte",
            "zero_point",
            "compressed",
            "prefix_06",
            "off_curve",
            "x_eq_p",
            "y_eq_p",
        )
    }
    expected |= {
        "respond_bad_then": "ValueError",
        "respond_after_failure": "RuntimeError",
        "shareP_w0M_identity_Z": "ValueError",
        "finish_before_respond": "RuntimeError",
        "respond_once": "ok",
        "respond_twice": "RuntimeError",
        "finish_right": "ok",
        "finish_twice": "RuntimeError",
        "w0_zero": "ValueError",
        "w0_order": "ValueError",
        "w0_31_bytes": "ValueError",
        "L_off_curve": "ValueError",
        "random_scalar_in_range": "True",
        "random_scalar_distinct": "True",
        "random_shareV_differ": "True",
        "forget_clears": "True",
        "after_forget_vector": "True",
    }
    for n in ("flipped", "short", "empty", "long"):
        expected[f"finish_wrong_{n}"] = "ValueError"
        expected[f"finish_after_wrong_{n}"] = "RuntimeError"
    assert got == expected
