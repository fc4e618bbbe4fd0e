# SPAKE2+ Verifier (RFC 9383), ciphersuite P256-SHA256-HKDF-SHA256-HMAC-SHA256.
#
# The device is the Verifier: it holds (w0, L) and never the setup code or w1.
#   respond(shareP) -> (shareV, confirmV)   shareV = y*P + w0*N
#                                           Z = y*(shareP - w0*M), V = y*L
#   finish(confirmP) -> K_shared            checks confirmP = HMAC(K_confirmP, shareV)
# w0*M, w0*N and a comb table for L depend only on the device's secrets, so
# `precompute` does them once (when the pairing window opens) and Verifier objects
# reuse them; `forget` frees them when the window closes.

import os
from hashlib import sha256

from micropython import const

from homeseal import ct, kdf, p256

_STATE_NEW = const(0)
_STATE_RESPONDED = const(1)
_STATE_DONE = const(2)
_STATE_FAILED = const(3)

_M_BYTES = p256.encode_point(p256.M)
_N_BYTES = p256.encode_point(p256.N)


class VerifierSecret:
    """(w0, L) with everything derived from them alone: w0*N, -(w0*M), a comb for L."""

    def __init__(self, w0, L):
        if not isinstance(w0, int):
            if len(w0) != p256.SCALAR_LEN:
                raise ValueError("w0 must be 32 bytes")
            w0 = p256.scalar_from_bytes(w0)
        if not 0 < w0 < p256.ORDER:
            raise ValueError("w0 out of range")
        self.w0 = w0
        self.w0_bytes = p256.scalar_to_bytes(w0)
        self.L = bytes(L)
        self.L_comb = p256.Comb(p256.decode_point(L), 5)
        w0N, w0M = p256.to_affine_many([p256.mul(w0, p256.N), p256.mul(w0, p256.M)])
        self.w0N = w0N
        self.neg_w0M = p256.negate(w0M)


_cached = None


def precompute(w0, L):
    """VerifierSecret for (w0, L), kept so later Verifiers with the same secrets reuse it."""
    global _cached  # noqa: PLW0603  (a module-level cache: no object to hold it)
    sec = _cached
    w0_int = w0 if isinstance(w0, int) else p256.scalar_from_bytes(w0)
    if sec is None or sec.w0 != w0_int or bytes(L) != sec.L:
        sec = _cached = VerifierSecret(w0, L)
    return sec


def forget():
    """Drop the cached VerifierSecret and G's comb table (~20 KB together): call it
    when the pairing window closes. The next Verifier recomputes them (~35 ms, unix)."""
    global _cached  # noqa: PLW0603  (see precompute)
    _cached = None
    p256.release_base()


def random_scalar():
    """Uniform y in [1, n-1]: rejection sampling on 32 random bytes (n is ~2^256)."""
    while True:
        y = int.from_bytes(os.urandom(32), "big")
        if 0 < y < p256.ORDER:
            return y


def compute_points(secret, shareP, y):
    """(shareV, Z, V) as 65-byte encodings; ValueError for an invalid shareP or identity Z/V."""
    X = p256.decode_point(shareP)
    # shareP - w0*M (Jacobian). It is the identity when shareP = w0*M; then Z is
    # the identity too and to_affine_many below refuses it.
    Xj = p256.add_affine(X[0], X[1], 1, *secret.neg_w0M)
    shareV_j = p256.add_affine(*p256.mul_base(y), *secret.w0N)
    Z_j = p256.mul(y, Xj)
    V_j = secret.L_comb.mul(y)
    # to_affine_many raises ValueError for the identity (h = 1 for P-256).
    shareV, Z, V = p256.to_affine_many([shareV_j, Z_j, V_j])
    return p256.encode_point(shareV), p256.encode_point(Z), p256.encode_point(V)


def _lv(h, data):
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def derive_keys(context, id_prover, id_verifier, w0_bytes, shareP, shareV, Z, V):
    """RFC 9383 section 3.4: (K_main, K_confirmP, K_confirmV, K_shared) from TT."""
    # K_main = Hash(TT), TT = each field with an 8-byte little-endian length prefix.
    h = sha256()
    for field in (context, id_prover, id_verifier, _M_BYTES, _N_BYTES):
        _lv(h, field)
    for field in (shareP, shareV, Z, V, w0_bytes):
        _lv(h, field)
    K_main = h.digest()
    conf = kdf.hkdf(b"", K_main, b"ConfirmationKeys", 64)
    K_shared = kdf.hkdf(b"", K_main, b"SharedKey", 32)
    return K_main, conf[:32], conf[32:], K_shared


class Verifier:
    """One SPAKE2+ attempt on the Verifier side: respond() once, then finish() once."""

    def __init__(self, context, id_prover, id_verifier, w0, L):
        self._context = bytes(context)
        self._id_prover = bytes(id_prover)
        self._id_verifier = bytes(id_verifier)
        self._secret = w0 if isinstance(w0, VerifierSecret) else precompute(w0, L)
        self._state = _STATE_NEW
        self._shareV = None
        self._K_confirmP = None
        self._K_shared = None

    def respond(self, shareP, _y=None):
        """shareP (65 bytes) -> (shareV, confirmV). `_y` fixes the scalar, for test vectors only."""
        if self._state != _STATE_NEW:
            raise RuntimeError("SPAKE2+ Verifier: respond() called out of order")
        # Any failure from here on spends the attempt.
        self._state = _STATE_FAILED
        shareP = bytes(shareP)
        sec = self._secret
        y = random_scalar() if _y is None else _y
        if not 0 < y < p256.ORDER:
            raise ValueError("y out of range")
        shareV, Z, V = compute_points(sec, shareP, y)
        _, K_confirmP, K_confirmV, K_shared = derive_keys(
            self._context, self._id_prover, self._id_verifier, sec.w0_bytes, shareP, shareV, Z, V
        )
        self._shareV = shareV
        self._K_confirmP = K_confirmP
        self._K_shared = K_shared
        self._state = _STATE_RESPONDED
        return shareV, kdf.hmac_sha256(K_confirmV, shareP)

    def finish(self, confirmP):
        """Check confirmP in constant time; return K_shared, or raise ValueError."""
        if self._state != _STATE_RESPONDED:
            raise RuntimeError("SPAKE2+ Verifier: finish() called out of order")
        expected = kdf.hmac_sha256(self._K_confirmP, self._shareV)
        K_shared = self._K_shared
        self._K_confirmP = None
        self._K_shared = None
        if not ct.equal(expected, bytes(confirmP)):
            self._state = _STATE_FAILED
            raise ValueError("SPAKE2+ confirmP mismatch")
        self._state = _STATE_DONE
        return K_shared
