# P-256 (secp256r1) arithmetic for the SPAKE2+ Verifier, pure MicroPython.
#
# Big ints (mpz) in Jacobian coordinates (X, Y, Z) ~ affine (X/Z^2, Y/Z^3);
# Z == 0 is the identity. Affine points are (x, y) tuples. One inversion per
# batch of results. Measured on the unix port, `a * b % p` costs ~5 us and is
# dominated by the reduction, so the formulas minimise `% p`, not additions.
# Not constant time (mpz is not): acceptable for the Verifier's ephemeral y,
# whose only use is one pairing attempt.

from micropython import const

# Curve y^2 = x^3 - 3x + b over GF(p), group order n, generator G.
FIELD_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
G = (
    0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
)
# RFC 9382 SPAKE2 constants for P-256 (compressed there as 02886e2f... / 03d8bbd6...).
M = (
    0x886E2F97ACE46E55BA9DD7242579F2993B64E16EF3DCAB95AFD497333D8FA12F,
    0x5FF355163E43CE224E0B0E65FF02AC8E5C7BE09419C785E0CA547D55A12E2D20,
)
N = (
    0xD8BBD6C639C62937B04D997F38C3770719C629D7014D49A24B4F98BAA1292B49,
    0x07D60AA6BFADE45008A636337F5168C64D9BD36034808CD564490B1E656EDBE7,
)

IDENTITY = (1, 1, 0)
_NAF_LEN = const(258)  # k < n < 2^256: at most 257 wNAF digits
POINT_LEN = 65  # SEC1 uncompressed: 0x04 || X || Y
SCALAR_LEN = 32


def decode_point(data):
    """SEC1 uncompressed point -> affine (x, y); ValueError unless a valid curve point."""
    if len(data) != POINT_LEN or data[0] != 4:
        raise ValueError("P-256 point must be 65 bytes starting with 0x04")
    p = FIELD_P
    x = int.from_bytes(bytes(data[1:33]), "big")
    y = int.from_bytes(bytes(data[33:65]), "big")
    if x >= p or y >= p:
        raise ValueError("P-256 point coordinate out of range")
    # The identity has no affine form and (0, 0) is not on the curve (b != 0),
    # so passing this check also excludes the identity.
    if (y * y - (x * x - 3) * x - B) % p:
        raise ValueError("P-256 point not on curve")
    return (x, y)


def encode_point(pt):
    """Affine (x, y) -> 65-byte SEC1 uncompressed encoding."""
    return b"\x04" + pt[0].to_bytes(32, "big") + pt[1].to_bytes(32, "big")


def scalar_from_bytes(data):
    return int.from_bytes(bytes(data), "big")


def scalar_to_bytes(k):
    return k.to_bytes(SCALAR_LEN, "big")


def double(X, Y, Z):
    # dbl-2001-b (a = -3). P-256 has no point of order 2, so Y != 0 when Z != 0.
    if not Z:
        return IDENTITY
    p = FIELD_P
    d = Z * Z % p
    g = Y * Y % p
    b = X * g % p
    a = (X - d) * (X + d) * 3 % p
    X3 = (a * a - 8 * b) % p
    return X3, (a * (4 * b - X3) - 8 * g * g) % p, 2 * Y * Z % p


def add(X1, Y1, Z1, X2, Y2, Z2):
    """Jacobian + Jacobian, complete (handles identity, P + P and P + -P)."""
    if not Z1:
        return X2, Y2, Z2
    if not Z2:
        return X1, Y1, Z1
    p = FIELD_P
    z1z1 = Z1 * Z1 % p
    z2z2 = Z2 * Z2 % p
    u1 = X1 * z2z2 % p
    s1 = Y1 * Z2 % p * z2z2 % p
    h = (X2 * z1z1 - u1) % p
    r = (Y2 * Z1 % p * z1z1 - s1) % p
    if not h:
        return double(X1, Y1, Z1) if not r else IDENTITY
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    X3 = (r * r - hhh - 2 * v) % p
    return X3, (r * (v - X3) - s1 * hhh) % p, Z1 * Z2 % p * h % p


def add_affine(X1, Y1, Z1, x2, y2):
    """Jacobian + affine (mixed addition), complete."""
    if not Z1:
        return x2, y2, 1
    p = FIELD_P
    z1z1 = Z1 * Z1 % p
    h = (x2 * z1z1 - X1) % p
    r = (y2 * Z1 % p * z1z1 - Y1) % p
    if not h:
        return double(X1, Y1, Z1) if not r else IDENTITY
    hh = h * h % p
    hhh = h * hh % p
    v = X1 * hh % p
    X3 = (r * r - hhh - 2 * v) % p
    return X3, (r * (v - X3) - Y1 * hhh) % p, Z1 * h % p


def to_affine_many(points):
    """Jacobian points -> affine with one inversion (Montgomery's trick).

    ValueError if any of them is the identity (it has no affine form)."""
    p = FIELD_P
    acc = 1
    prefix = []
    for pt in points:
        if not pt[2]:
            raise ValueError("P-256 point at infinity")
        prefix.append(acc)
        acc = acc * pt[2] % p
    inv = pow(acc, p - 2, p)
    out = [None] * len(points)
    for i in range(len(points) - 1, -1, -1):
        X, Y, Z = points[i]
        zi = inv * prefix[i] % p
        inv = inv * Z % p
        zi2 = zi * zi % p
        out[i] = (X * zi2 % p, Y * zi2 % p * zi % p)
    return out


def to_affine(pt):
    return to_affine_many([pt])[0]


def mul(k, pt):
    """k * pt for an affine or Jacobian point and any integer k >= 0 (reduced mod n).

    Width-5 NAF: ~256 doublings and ~43 additions of odd multiples 1..15 * pt."""
    k %= ORDER
    if len(pt) == 2:
        pt = (pt[0], pt[1], 1)
    if not k or not pt[2]:
        return IDENTITY
    p = FIELD_P
    # Table of odd multiples: T[i] = (2i + 1) * pt.
    two = double(*pt)
    table = [pt]
    for _ in range(7):
        table.append(add(*table[-1], *two))
    # wNAF digits (-15..15), least significant first, stored + 16 in one small
    # bytearray: a growing list would need ever larger contiguous blocks, which a
    # heap fragmented by big-int garbage cannot always provide on a board.
    digits = bytearray(_NAF_LEN)
    n = 0
    while k:
        d = 0
        if k & 1:
            d = k & 31
            if d > 16:
                d -= 32
            k -= d
        digits[n] = d + 16
        n += 1
        k >>= 1
    X, Y, Z = IDENTITY
    for i in range(n - 1, -1, -1):
        X, Y, Z = double(X, Y, Z)
        d = digits[i] - 16
        if d > 0:
            X, Y, Z = add(X, Y, Z, *table[d >> 1])
        elif d < 0:
            tx, ty, tz = table[(-d) >> 1]
            X, Y, Z = add(X, Y, Z, tx, p - ty, tz)
    return X, Y, Z


class Comb:
    """Fixed-base multiplication for a point used many times (G, L).

    Lim-Lee comb with `teeth` rows of `d` bits: table[i] = sum of 2^(d*j) * pt
    over the set bits j of i, stored affine. A multiplication then costs d - 1
    doublings and at most d mixed additions (teeth = 5: 51 + 52). Memory doubles
    with each tooth: ~4.5 KB for 4, ~9 KB for 5, ~19 KB for 6 (unix port)."""

    def __init__(self, pt, teeth=5):
        self.teeth = teeth
        self.d = d = (256 + teeth - 1) // teeth
        rows = [(pt[0], pt[1], 1)]
        for _ in range(teeth - 1):
            q = rows[-1]
            for _ in range(d):
                q = double(*q)
            rows.append(q)
        size = 1 << teeth
        jac = [IDENTITY] * size
        for j in range(teeth):
            jac[1 << j] = rows[j]
        for i in range(3, size):
            if i & (i - 1):
                low = i & -i
                jac[i] = add(*jac[i - low], *jac[low])
        # Every entry is c * pt with 0 < c < 2^253 < n, so none is the identity.
        self.table = [None] + to_affine_many(jac[1:])

    def mul(self, k):
        """k * pt (Jacobian) for 0 <= k < n."""
        k %= ORDER
        d = self.d
        teeth = self.teeth
        table = self.table
        X, Y, Z = IDENTITY
        for c in range(d - 1, -1, -1):
            X, Y, Z = double(X, Y, Z)
            idx = 0
            for j in range(teeth - 1, -1, -1):
                idx = (idx << 1) | ((k >> (d * j + c)) & 1)
            if idx:
                X, Y, Z = add_affine(X, Y, Z, *table[idx])
        return X, Y, Z


_base = None


def mul_base(k):
    """k * G (Jacobian), with G's comb table (~9 KB) built on first use and kept."""
    global _base  # noqa: PLW0603  (a module-level cache: no object to hold it)
    if _base is None:
        _base = Comb(G, 5)
    return _base.mul(k)


def release_base():
    """Drop G's comb table (e.g. when pairing is over); the next mul_base rebuilds it."""
    global _base  # noqa: PLW0603  (see mul_base)
    _base = None


def negate(pt):
    """-pt for an affine or Jacobian point."""
    if len(pt) == 2:
        return (pt[0], (FIELD_P - pt[1]) % FIELD_P)
    return (pt[0], (FIELD_P - pt[1]) % FIELD_P, pt[2])


def ecdh_x(k, public):
    """x-coordinate (32 bytes) of k * public for a 65-byte SEC1 public point (ECDH)."""
    x, _ = to_affine(mul(k, decode_point(public)))
    return x.to_bytes(32, "big")
