"""Crypto figures, side by side: firmware on the MicroPython unix port vs the HA side.

    .venv/bin/python benchmarks/crypto_bench.py

MicroPython columns run benchmarks/mpy_crypto_bench.py with the firmware modules as
source and as .mpy (compiled with mpy-cross -march=x64). The CPython column uses the
HA-side implementation in homeseal_protocol/ (cryptography underneath).
Peak heap of a KK responder handshake on MicroPython is the difference between the
smallest -X heapsize that runs the handshake and the smallest that runs everything
but it (.mpy build, so no compiler memory is counted); on CPython it is tracemalloc's
peak. Timings on a shared machine are noisy: MicroPython figures are the best of a
few runs, CPython ones means of many.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testbed.paths import MICROPYTHON, MPY_CROSS  # noqa: E402

BENCH = ROOT / "benchmarks" / "mpy_crypto_bench.py"
MODULES = ("__init__", "ct", "kdf", "x25519", "chachapoly", "p256", "spake2plus", "noise")
KK = "Noise_KK_25519_ChaChaPoly_SHA256"
PROLOGUE = b"HomeSeal v1 session" + bytes(20)
GOALS = {
    "x25519_ms": "",
    "kk_responder_ms": "<= 20",
    "kk_responder_pre_e_ms": "<= 20",
    "kk_responder_pre_e_ss_ms": "<= 20",
    "spake_verifier_ms": "<= 150",
    "spake_precompute_ms": "",
    "aead_64_mb_s": "",
    "aead_1k_mb_s": ">= 2",
    "kk_peak_heap_kib": "<= 24",
}


def mpy_env(path: Path) -> dict[str, str]:
    return {**os.environ, "MICROPYPATH": f".frozen:{path}"}


def build_mpy(dest: Path) -> Path:
    pkg = dest / "homeseal"
    pkg.mkdir(parents=True)
    for name in MODULES:
        src = ROOT / "firmware" / "homeseal" / f"{name}.py"
        subprocess.run(
            [str(MPY_CROSS), "-march=x64", "-o", str(pkg / f"{name}.mpy"), str(src)],
            check=True,
        )
    # The bench script too, run with -m: no compiler memory in the heap figures.
    subprocess.run(
        [str(MPY_CROSS), "-march=x64", "-o", str(dest / "mpy_crypto_bench.mpy"), str(BENCH)],
        check=True,
    )
    return dest


def mpy_times(path: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [str(MICROPYTHON), "-X", "heapsize=16m", str(BENCH), "time"],
        env=mpy_env(path),
        capture_output=True,
        check=True,
        timeout=300,
    )
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _fits(path: Path, heap: int, mode: str, data: list[str]) -> bool:
    proc = subprocess.run(
        [str(MICROPYTHON), "-X", f"heapsize={heap}", "-m", "mpy_crypto_bench", "heap", mode, *data],
        env=mpy_env(path),
        capture_output=True,
        check=False,
        timeout=60,
    )
    return proc.returncode == 0


def min_heap(path: Path, mode: str, data: list[str]) -> int:
    lo, hi = 1024, 1 << 20
    if not _fits(path, hi, mode, data):
        raise RuntimeError(f"{mode} does not run in {hi} bytes of heap")
    while hi - lo > 128:
        mid = (lo + hi) // 2
        if _fits(path, mid, mode, data):
            hi = mid
        else:
            lo = mid
    return hi


def _mean_ms(fn: Callable[[], object], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1000


def cpython_figures() -> tuple[dict[str, Any], str, tuple[bytes, bytes, bytes, bytes]]:
    """HA-side figures, and KK inputs for the MicroPython heap run (s, s.pub, i.pub, msg1)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import (  # noqa: PLC0415
        X25519PrivateKey,
        X25519PublicKey,
    )
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305  # noqa: PLC0415

    out: dict[str, Any] = {}
    peer = X25519PublicKey.from_public_bytes(
        X25519PrivateKey.generate().public_key().public_bytes_raw()
    )
    key = X25519PrivateKey.from_private_bytes(bytes(range(32)))
    out["x25519_ms"] = _mean_ms(lambda: key.exchange(peer), 200)
    aead = ChaCha20Poly1305(bytes(32))
    for size, name, n in ((64, "aead_64_mb_s", 20000), (1024, "aead_1k_mb_s", 5000)):
        buf = bytes(size)
        t = time.perf_counter()
        for _ in range(n):
            aead.encrypt(bytes(12), buf, b"")
        out[name] = size * n / (time.perf_counter() - t) / 1e6

    r_priv = os.urandom(32)
    r_pub = X25519PrivateKey.from_private_bytes(r_priv).public_key().public_bytes_raw()
    i_priv = os.urandom(32)
    i_pub = X25519PrivateKey.from_private_bytes(i_priv).public_key().public_bytes_raw()
    try:
        from homeseal_protocol.crypto import noise, spake2plus  # noqa: PLC0415
        from homeseal_protocol.errors import ConfirmationError  # noqa: PLC0415
    except ImportError as err:
        print(f"(HA-side client not importable: {err}; CPython Noise/SPAKE2+ columns empty)")
        return out, "cryptography", (r_priv, r_pub, i_pub, b"")

    def initiator() -> Any:
        return noise.HandshakeState(KK, True, PROLOGUE, s=i_priv, rs=r_pub)

    msg1 = initiator().write_message(b"")

    def respond() -> None:
        hs = noise.HandshakeState(KK, False, PROLOGUE, s=r_priv, rs=i_pub)
        hs.read_message(msg1)
        hs.write_message(b"")
        hs.split()

    out["kk_responder_ms"] = _mean_ms(respond, 50)
    tracemalloc.start()
    respond()
    out["kk_peak_heap_kib"] = tracemalloc.get_traced_memory()[1] / 1024
    tracemalloc.stop()

    w0 = bytes.fromhex("bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3")
    L = bytes.fromhex(
        "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f00bfedcbd09b2400"
        "142d40a14f2064ef31dfaa903b91d1faea7093d835966efd"
    )
    share_p = bytes.fromhex(
        "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1de127727f418b5"
        "966afadfdd95a6e4591d171056b333dab97a79c7193e341727"
    )

    def verify() -> None:
        v = spake2plus.Verifier(b"HomeSeal v1 pairing", bytes(10), bytes(10), w0, L)
        v.respond(share_p)
        with contextlib.suppress(ConfirmationError):
            v.finish(bytes(32))

    out["spake_verifier_ms"] = _mean_ms(verify, 5)
    return out, "HA client (homeseal_protocol)", (r_priv, r_pub, i_pub, msg1)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    cpy, cpy_label, kk_inputs = cpython_figures()
    with tempfile.TemporaryDirectory() as tmp:
        mpy_dir = build_mpy(Path(tmp) / "mpy")
        src = mpy_times(ROOT / "firmware")
        mpy = mpy_times(mpy_dir)
        if kk_inputs[3]:
            data = [k.hex() for k in kk_inputs]
            base = min_heap(mpy_dir, "base", data)
            with_kk = min_heap(mpy_dir, "kk", data)
            mpy["kk_peak_heap_kib"] = (with_kk - base) / 1024
            mpy["spake_peak_heap_kib"] = (min_heap(mpy_dir, "spake", data) - base) / 1024
            mpy["_heap_note"] = f"min heapsize {with_kk} B with the handshake, {base} B without"
    rows = [
        ("X25519 (one scalar mult), ms", "x25519_ms"),
        ("KK responder (read 1, write 2, split), ms", "kk_responder_ms"),
        ("  ... with pre-generated e, ms", "kk_responder_pre_e_ms"),
        ("  ... with pre-generated e and cached ss, ms", "kk_responder_pre_e_ss_ms"),
        ("SPAKE2+ Verifier respond+finish, ms", "spake_verifier_ms"),
        ("  ... from cold (w0/L tables, G comb), ms", "spake_verifier_cold_ms"),
        ("SPAKE2+ precompute(w0, L) alone, ms", "spake_precompute_ms"),
        ("ChaCha20-Poly1305 64 B, MB/s", "aead_64_mb_s"),
        ("ChaCha20-Poly1305 1 KiB, MB/s", "aead_1k_mb_s"),
        ("Peak heap, KK responder, KiB", "kk_peak_heap_kib"),
        ("  allocated in total, pre-gen e + ss (gc off), KiB", "kk_alloc_gc_off_kib"),
        ("  allocated by one X25519 (gc off), KiB", "x25519_alloc_gc_off_kib"),
        ("Peak heap, SPAKE2+ Verifier from cold, KiB", "spake_peak_heap_kib"),
    ]
    head = ("figure", "goal (unix)", "mpy source", "mpy .mpy", "CPython")
    widths = (46, 12, 11, 11, 10)
    print(" ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    for label, key in rows:
        cells = (label, GOALS.get(key, ""), fmt(src.get(key)), fmt(mpy.get(key)), fmt(cpy.get(key)))
        print(" ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    print(f"\nCPython column: {cpy_label}.")
    if "_heap_note" in mpy:
        print(f"MicroPython heap: {mpy['_heap_note']} (.mpy build).")
    print(
        f"Transport round trip after the MicroPython handshake: {mpy['kk_transport_roundtrip_ok']}"
    )


if __name__ == "__main__":
    main()
