"""SPAKE2+ (RFC 9383) with the ciphersuite P256-SHA256-HKDF-SHA256-HMAC-SHA256.

HomeSeal's controller is the Prover (it knows the setup code, hence w0 and w1);
the device is the Verifier (it stores only w0 and L = w1·P). The Verifier class
here serves the provisioning tool, tests and worked examples; the device runs its
own MicroPython Verifier.

    Prover                                    Verifier
    shareP = x·P + w0·M        ── shareP ──▶
                                              shareV = y·P + w0·N
                                              Z = h·y·(shareP - w0·M), V = h·y·L
                               ◀─ shareV, confirmV ──
    Z = h·x·(shareV - w0·N)
    V = h·w1·(shareV - w0·N)
                               ── confirmP ──▶

TT, K_main, K_confirmP ‖ K_confirmV, K_shared, confirmP and confirmV as in
RFC 9383 §3.3-3.4. h = 1 for P-256. Error messages never carry key material.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ..errors import ConfirmationError, StateError
from . import p256
from .p256 import Point

# RFC 9383 §4 / RFC 9382 §6: the P-256 constants M and N (SEC1 compressed).
M_BYTES: Final = bytes.fromhex("02886e2f97ace46e55ba9dd7242579f2993b64e16ef3dcab95afd497333d8fa12f")
N_BYTES: Final = bytes.fromhex("03d8bbd6c639c62937b04d997f38c3770719c629d7014d49a24b4f98baa1292b49")
M: Final = p256.decode_compressed(M_BYTES)
N: Final = p256.decode_compressed(N_BYTES)

PBKDF_LEN: Final = 80  # w0s ‖ w1s, 40 bytes each (RFC 9383 §3.2: ≥ 64 bits over n)
SHARE_LEN: Final = p256.POINT_LEN
CONFIRM_LEN: Final = 32
KEY_LEN: Final = 32


# ---------------------------------------------------------------- derivation


def _length_prefixed(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


def pbkdf_input(password: bytes, id_prover: bytes, id_verifier: bytes) -> bytes:
    """What RFC 9383 §3.2 stretches: len(pw) ‖ pw ‖ len(idProver) ‖ idProver ‖
    len(idVerifier) ‖ idVerifier, each length 8 bytes little-endian."""
    return b"".join(_length_prefixed(item) for item in (password, id_prover, id_verifier))


def derive_w0_w1(
    password: bytes, salt: bytes, iterations: int, *, id_prover: bytes, id_verifier: bytes
) -> tuple[int, int]:
    """w0, w1 from PBKDF2-HMAC-SHA256(pbkdf_input(…), salt, iterations, dkLen = 80)."""
    if iterations < 1:
        raise ValueError("iterations must be positive")
    okm = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=PBKDF_LEN, salt=salt, iterations=iterations
    ).derive(pbkdf_input(password, id_prover, id_verifier))
    half = PBKDF_LEN // 2
    return (
        int.from_bytes(okm[:half], "big") % p256.N,
        int.from_bytes(okm[half:], "big") % p256.N,
    )


def compute_verifier(
    password: bytes, salt: bytes, iterations: int, *, id_prover: bytes, id_verifier: bytes
) -> tuple[bytes, bytes]:
    """What a device stores: (w0 as 32 bytes, L = w1·P as 65 bytes)."""
    w0, w1 = derive_w0_w1(password, salt, iterations, id_prover=id_prover, id_verifier=id_verifier)
    return p256.scalar_to_bytes(w0), p256.multiply(w1, p256.G).encode()


# ---------------------------------------------------------------- transcript


def transcript(  # noqa: PLR0917 - the RFC's order of TT fields
    context: bytes,
    id_prover: bytes,
    id_verifier: bytes,
    share_p: bytes,
    share_v: bytes,
    z: bytes,
    v: bytes,
    w0: int,
) -> bytes:
    """TT of RFC 9383 §3.3 (points uncompressed, w0 as 32 bytes, 8-byte LE lengths)."""
    return b"".join(
        _length_prefixed(item)
        for item in (
            context,
            id_prover,
            id_verifier,
            M.encode(),
            N.encode(),
            share_p,
            share_v,
            z,
            v,
            p256.scalar_to_bytes(w0),
        )
    )


def key_schedule(tt: bytes) -> tuple[bytes, bytes, bytes]:
    """(K_confirmP, K_confirmV, K_shared) from TT (RFC 9383 §3.4)."""
    k_main = hashlib.sha256(tt).digest()
    confirmation = HKDF(
        algorithm=hashes.SHA256(), length=2 * KEY_LEN, salt=None, info=b"ConfirmationKeys"
    ).derive(k_main)
    k_shared = HKDF(algorithm=hashes.SHA256(), length=KEY_LEN, salt=None, info=b"SharedKey").derive(
        k_main
    )
    return confirmation[:KEY_LEN], confirmation[KEY_LEN:], k_shared


def _mac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, hashlib.sha256)


def _scalar(value: int | bytes, name: str) -> int:
    number = int.from_bytes(value, "big") if isinstance(value, bytes | bytearray) else value
    if not 0 <= number < p256.N:
        raise ValueError(f"{name} must be a scalar below the group order")
    return number


def _random_scalar() -> int:
    return secrets.randbelow(p256.N - 1) + 1


def _non_identity(point: Point) -> bytes:
    if point.is_identity:
        raise ValueError("SPAKE2+ produced the identity point; abort")
    return point.encode()


# ---------------------------------------------------------------- roles


class Prover:
    """The SPAKE2+ Prover: `start()` → shareP, then `finish(shareV, confirmV)`."""

    def __init__(
        self,
        context: bytes,
        id_prover: bytes,
        id_verifier: bytes,
        w0: int | bytes,
        w1: int | bytes,
        *,
        x: int | None = None,
    ) -> None:
        self._context = bytes(context)
        self._id_prover = bytes(id_prover)
        self._id_verifier = bytes(id_verifier)
        self._w0 = _scalar(w0, "w0")
        self._w1 = _scalar(w1, "w1")
        self._x = _scalar(x, "x") if x is not None else _random_scalar()
        self._share_p: bytes | None = None
        self._done = False

    def start(self) -> bytes:
        """shareP = x·P + w0·M (65 bytes)."""
        if self._share_p is not None:
            raise StateError("start() already called")
        self._share_p = _non_identity(p256.multiply_add(self._x, p256.G, self._w0, M))
        return self._share_p

    def finish(self, share_v: bytes, confirm_v: bytes) -> tuple[bytes, bytes]:
        """Check confirmV; return (confirmP, K_shared). Raises ConfirmationError."""
        if self._share_p is None:
            raise StateError("finish() before start()")
        if self._done:
            raise StateError("finish() already called")
        self._done = True  # one try per attempt, whatever happens below
        if len(confirm_v) != CONFIRM_LEN:
            raise ValueError(f"confirmV must be {CONFIRM_LEN} bytes")
        point_v = p256.decode_point(share_v)
        base = point_v - p256.multiply(self._w0, N)
        z = _non_identity(p256.multiply(self._x, base))
        v = _non_identity(p256.multiply(self._w1, base))
        tt = transcript(
            self._context,
            self._id_prover,
            self._id_verifier,
            self._share_p,
            bytes(share_v),
            z,
            v,
            self._w0,
        )
        k_confirm_p, k_confirm_v, k_shared = key_schedule(tt)
        if not hmac.compare_digest(_mac(k_confirm_v, self._share_p), bytes(confirm_v)):
            raise ConfirmationError("confirmV did not verify (wrong setup code?)")
        return _mac(k_confirm_p, bytes(share_v)), k_shared


class Verifier:
    """The SPAKE2+ Verifier: `respond(shareP)` → (shareV, confirmV), then `finish(confirmP)`."""

    def __init__(
        self,
        context: bytes,
        id_prover: bytes,
        id_verifier: bytes,
        w0: int | bytes,
        L: bytes,
        *,
        y: int | None = None,
    ) -> None:
        self._context = bytes(context)
        self._id_prover = bytes(id_prover)
        self._id_verifier = bytes(id_verifier)
        self._w0 = _scalar(w0, "w0")
        self._L = p256.decode_point(L)
        self._y = _scalar(y, "y") if y is not None else _random_scalar()
        self._expected: tuple[bytes, bytes] | None = None
        self._done = False

    def respond(self, share_p: bytes) -> tuple[bytes, bytes]:
        """Validate shareP; return (shareV, confirmV)."""
        if self._expected is not None or self._done:
            raise StateError("respond() already called")
        point_p = p256.decode_point(share_p)
        share_v = _non_identity(p256.multiply_add(self._y, p256.G, self._w0, N))
        z = _non_identity(p256.multiply(self._y, point_p - p256.multiply(self._w0, M)))
        v = _non_identity(p256.multiply(self._y, self._L))
        tt = transcript(
            self._context,
            self._id_prover,
            self._id_verifier,
            bytes(share_p),
            share_v,
            z,
            v,
            self._w0,
        )
        k_confirm_p, k_confirm_v, k_shared = key_schedule(tt)
        self._expected = (_mac(k_confirm_p, share_v), k_shared)
        return share_v, _mac(k_confirm_v, bytes(share_p))

    def finish(self, confirm_p: bytes) -> bytes:
        """Check confirmP in constant time; return K_shared. Raises ConfirmationError."""
        if self._expected is None:
            raise StateError("finish() before respond()")
        if self._done:
            raise StateError("finish() already called")
        self._done = True
        expected, k_shared = self._expected
        if not hmac.compare_digest(expected, bytes(confirm_p)):
            raise ConfirmationError("confirmP did not verify (wrong setup code?)")
        return k_shared
