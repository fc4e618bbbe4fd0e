"""X25519 (RFC 7748 section 5) with Python big integers and a Montgomery ladder.

x25519(k, u) follows the RFC exactly: k is clamped, the top bit of u is masked, and a
non-canonical u (>= 2**255 - 19) is accepted and reduced. Low-order inputs give the
RFC result, all zero; dh() is the call for key agreement and rejects that result with
ValueError, as Noise and the relay authentication require.

Speed: MicroPython's big-integer `%` costs about twice a multiplication, so the ladder
reduces its four outputs per step with `%` and its intermediate products with a cheaper
fold, x = (x mod 2**256) + 38 * (x >> 256) (2**256 = 38 mod p), which keeps them below
2**275; the inversion uses the usual addition chain for z**(p-2) instead of pow().

Side channels, honestly: the ladder always runs 255 steps of the same operations in
the same order, with no branch on secret data. The conditional swap selects from a
two-element tuple with the swap bit as index (both entries side by side in memory), so
no arithmetic depends on the bit. That is as far as MicroPython lets us go: big
integers are variable-length heap objects, so the time of each multiplication,
reduction and allocation depends on the operands' sizes (for example on leading zero
digits), and the garbage collector runs when it likes. This is not constant time in
the sense of a reviewed C implementation. What limits the timings an attacker gets of
the static key on input of its choosing: a HANDSHAKE1 costs a DH with it (`es`) only
within session.Responder's budget (4 at once, then one per 5 s; beyond it, no DH and
no answer; any peer but the pinned controller's id gets RESET not_paired and no DH),
and the relay login costs one per connection (relay.py: at most one connection per
backoff delay, which under a sustained attack averages 2.5 s or more; with
relay.relay_key pinned the relay's key cannot be chosen at all). `ss` with the pinned
controller's key is computed once per boot or pairing (its key is fixed), and pairing
itself uses no X25519 with the static key.
"""

import os

from micropython import const

_P = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED)
_A24 = const(121665)
_MASK255 = const(0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)
_MASK256 = const(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF)

BASE_POINT = b"\x09" + bytes(31)


def _ladder(k, x1):
    """(x2, z2) of k * (x1, ...) for a clamped 32-byte scalar k (RFC 7748 section 5)."""
    p = _P
    m = _MASK256
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    # Bits 254..0 of k, read in place: no list of 255 bits on the heap.
    for t in range(254, -1, -1):
        k_t = (k[t >> 3] >> (t & 7)) & 1
        swap ^= k_t
        pair = (x2, x3)
        x2 = pair[swap]
        x3 = pair[swap ^ 1]
        pair = (z2, z3)
        z2 = pair[swap]
        z3 = pair[swap ^ 1]
        swap = k_t
        a = x2 + z2
        aa = a * a
        aa = (aa & m) + (aa >> 256) * 38
        b = x2 - z2
        bb = b * b
        bb = (bb & m) + (bb >> 256) * 38
        e = aa - bb
        da = (x3 - z3) * a
        da = (da & m) + (da >> 256) * 38
        cb = (x3 + z3) * b
        cb = (cb & m) + (cb >> 256) * 38
        x3 = da + cb
        x3 = x3 * x3 % p
        z3 = da - cb
        z3 = z3 * z3
        z3 = (z3 & m) + (z3 >> 256) * 38
        z3 = x1 * z3 % p
        x2 = aa * bb % p
        z2 = e * (aa + _A24 * e) % p
    pair = (x2, x3)
    x2 = pair[swap]
    pair = (z2, z3)
    z2 = pair[swap]
    return x2, z2


def _sqn(x, n):
    p = _P
    for _ in range(n):
        x = x * x % p
    return x


def _invert(z):
    """z**(p-2) mod p (0 for z = 0): 254 squarings and 11 multiplications."""
    p = _P
    z2 = z * z % p
    z9 = _sqn(z2, 2) * z % p
    z11 = z9 * z2 % p
    z_5_0 = z11 * z11 % p * z9 % p
    z_10_0 = _sqn(z_5_0, 5) * z_5_0 % p
    z_20_0 = _sqn(z_10_0, 10) * z_10_0 % p
    z_40_0 = _sqn(z_20_0, 20) * z_20_0 % p
    z_50_0 = _sqn(z_40_0, 10) * z_10_0 % p
    z_100_0 = _sqn(z_50_0, 50) * z_50_0 % p
    z_200_0 = _sqn(z_100_0, 100) * z_100_0 % p
    z_250_0 = _sqn(z_200_0, 50) * z_50_0 % p
    return _sqn(z_250_0, 5) * z11 % p


def x25519(k, u):
    """X25519(k, u) per RFC 7748: 32-byte scalar and u-coordinate -> 32 bytes."""
    if len(k) != 32 or len(u) != 32:
        raise ValueError("x25519 inputs must be 32 bytes")
    k = bytearray(k)
    k[0] &= 248
    k[31] = (k[31] & 127) | 64
    x2, z2 = _ladder(k, (int.from_bytes(u, "little") & _MASK255) % _P)
    return (x2 * _invert(z2) % _P).to_bytes(32, "little")


def public_key(priv):
    """The X25519 public key of a 32-byte private key."""
    return x25519(priv, BASE_POINT)


def generate_private():
    """A fresh 32-byte private key from os.urandom (clamping happens on use)."""
    return os.urandom(32)


def dh(priv, pub):
    """Shared secret for key agreement; ValueError when it is all zero (low-order pub)."""
    shared = x25519(priv, pub)
    acc = 0
    for b in shared:
        acc |= b
    if acc == 0:
        raise ValueError("x25519 shared secret is all zero")
    return shared
