# ECDSA P-256 / SHA-256 signature verification (FIPS 186-5, 6.4.2): the check a
# device makes of a signed firmware release against the release key it pinned
# at provisioning. Signatures are r || s, 32 bytes each (IEEE P1363), as the
# release manifest carries them.
#
# Verification handles public data only (the key, the message, the signature),
# so the variable-time big-int arithmetic of p256.py is fine here.
from hashlib import sha256

from homeseal import p256

SIGNATURE_LEN = 64


def verify(public, message, signature):
    """True when `signature` is the key `public`'s (65-byte SEC1 uncompressed)
    signature of `message`; False for any bad key, signature or message."""
    if len(signature) != SIGNATURE_LEN:
        return False
    n = p256.ORDER
    r = int.from_bytes(bytes(signature[:32]), "big")
    s = int.from_bytes(bytes(signature[32:]), "big")
    if not (0 < r < n and 0 < s < n):
        return False
    try:
        q = p256.decode_point(public)
    except ValueError:
        return False
    # A 256-bit hash for a 256-bit order: the whole digest is the integer e.
    e = int.from_bytes(sha256(message).digest(), "big")
    w = pow(s, n - 2, n)  # s^-1 mod n (n is prime)
    # u1*G + u2*Q with plain wNAF multiplications: no 9 KB comb table for G,
    # which would outlive the check (an update runs with the least heap free).
    pt = p256.add(*p256.mul(e * w % n, p256.G), *p256.mul(r * w % n, q))
    if not pt[2]:
        return False  # the identity: no x coordinate
    x, _ = p256.to_affine(pt)
    return x % n == r
