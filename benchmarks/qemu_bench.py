"""Deterministic cost of the firmware's crypto on the QEMU Cortex-M3 port.

Runs under `qemu-system-arm -icount shift=0` (one guest instruction per virtual
nanosecond) and reads the board's 25 MHz CMSDK timer around each operation, so
the figures are guest instructions (resolution 40) and do not move with host
load. The cost of reading the timer itself is subtracted. "heap kept" is what
the operation leaves allocated after a collection (its result and any cache:
the SPAKE2+ comb tables live on), out of the board's 140 KiB heap.

    .venv/bin/python benchmarks/qemu_bench.py
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from homeseal_protocol.crypto import noise as ha_noise  # noqa: E402
from tests.qemu.harness import QemuBoard, ensure_firmware  # noqa: E402
from tests.support import load_shared_vectors  # noqa: E402

KK = "Noise_KK_25519_ChaChaPoly_SHA256"
# RFC 9383 appendix C: a real Verifier run with the RFC's y.
SPAKE = {
    "w0": "bb8e1bbcf3c48f62c08db243652ae55d3e5586053fca77102994f23ad95491b3",
    "L": "04eb7c9db3d9a9eb1f8adab81b5794c1f13ae3e225efbe91ea487425854c7fc00f"
    "00bfedcbd09b2400142d40a14f2064ef31dfaa903b91d1faea7093d835966efd",
    "y": "717a72348a182085109c8d3917d6c43d59b224dc6a7fc4f0483232fa6516d8b3",
    "shareP": "04ef3bd051bf78a2234ec0df197f7828060fe9856503579bb1733009042c15c0c1"
    "de127727f418b5966afadfdd95a6e4591d171056b333dab97a79c7193e341727",
    "confirmP": "926cc713504b9b4d76c9162ded04b5493e89109f6d89462cd33adc46fda27527",
}


def _key(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _release_signature() -> tuple[str, str, str]:
    """A valid Wycheproof ECDSA P-256 / SHA-256 case: public key, message, r || s (hex)."""
    data = load_shared_vectors("wycheproof_ecdsa_secp256r1_sha256_p1363_test.json")
    group = data["testGroups"][0]
    case = next(t for t in group["tests"] if t["result"] == "valid")
    return group["publicKey"]["uncompressed"], case["msg"], case["sig"]


def _script() -> str:
    pub, msg, sig = _release_signature()
    dev_s, ctl_s, ctl_e = _key("device s"), _key("controller s"), _key("controller e")
    dev_pub = ha_noise.KeyPair.from_private(dev_s).public
    ctl_pub = ha_noise.KeyPair.from_private(ctl_s).public
    prologue = b"HomeSeal v1 session" + bytes(20)
    msg1 = ha_noise.HandshakeState(KK, True, prologue, s=ctl_s, e=ctl_e, rs=dev_pub).write_message()
    return f"""
import gc
import qemu_cycles as qc
from binascii import unhexlify as h
from homeseal import chachapoly, ecdsa, noise, spake2plus, x25519

def cost(fn):
    gc.collect()
    qc.start()
    r = fn()
    t = qc.ticks()
    return t, r

base = min(cost(lambda: None)[0] for _ in range(3))
def report(name, fn):
    gc.collect()
    before = gc.mem_alloc()
    t, r = cost(fn)
    gc.collect()
    print("%s|%d|%d" % (name, (t - base) * qc.INSNS_PER_TICK, gc.mem_alloc() - before))
    return r

k = bytes(range(32))
report("X25519 (one scalar multiplication)", lambda: x25519.x25519(k, x25519.BASE_POINT))

dev = ({dev_s!r}, {dev_pub!r})
def kk():
    hs = noise.HandshakeState(
        "{KK}", False, {prologue!r}, s=dev, e={_key("device e")!r}, rs={ctl_pub!r})
    hs.read_message({msg1!r})
    hs.write_message()
    return hs
report("Noise KK responder handshake (read msg1, new e, write msg2)", kk)

CTX = b"SPAKE2+-P256-SHA256-HKDF-SHA256-HMAC-SHA256 Test Vectors"
sec = report("SPAKE2+ Verifier precompute (w0*M, w0*N, comb for L; once per boot)",
             lambda: spake2plus.precompute(h("{SPAKE["w0"]}"), h("{SPAKE["L"]}")))
ver = spake2plus.Verifier(CTX, b"client", b"server", sec, None)
report("SPAKE2+ Verifier respond (shareV, confirmV; incl. G comb on first use)",
       lambda: ver.respond(h("{SPAKE["shareP"]}"), int("{SPAKE["y"]}", 16)))
report("SPAKE2+ Verifier finish (check confirmP -> K_shared)",
       lambda: ver.finish(h("{SPAKE["confirmP"]}")))
ver2 = spake2plus.Verifier(CTX, b"client", b"server", sec, None)
report("SPAKE2+ Verifier respond, G comb cached (a later attempt)",
       lambda: ver2.respond(h("{SPAKE["shareP"]}"), int("{SPAKE["y"]}", 16)))

key, nonce, ad, msg = bytes(32), bytes(12), bytes(16), bytes(1024)
sealed = report("ChaCha20-Poly1305 encrypt, 1 KiB", lambda: chachapoly.encrypt(key, nonce, ad, msg))
report("ChaCha20-Poly1305 decrypt, 1 KiB", lambda: chachapoly.decrypt(key, nonce, ad, sealed))
assert report("ECDSA P-256 / SHA-256 verify (a signed release's manifest)",
              lambda: ecdsa.verify(h("{pub}"), h("{msg}"), h("{sig}")))
"""


def main() -> int:
    ensure_firmware()
    started = time.monotonic()
    with QemuBoard(icount=True) as board:
        out = board.exec(_script(), timeout=600)
    wall = time.monotonic() - started
    print("HomeSeal firmware on MicroPython 1.26.1, QEMU mps2-an385 (Cortex-M3), -icount shift=0")
    print(f"{'operation':72} {'guest instructions':>19} {'heap kept':>10}")
    for line in out.splitlines():
        name, count, kept = line.rsplit("|", 2)
        print(f"{name:72} {int(count):>19,} {int(kept):>10,}")
    print(f"(resolution 40 instructions; QEMU wall time {wall:.1f} s, not a figure of merit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
