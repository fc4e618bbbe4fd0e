"""NIST P-256 point arithmetic in pure Python, for SPAKE2+ (RFC 9383).

`cryptography` offers ECDH and ECDSA on P-256 but no point addition or
multiplication of arbitrary points, which SPAKE2+ needs (x·P + w0·M, y·(X - w0·M)).
Points are kept in homogeneous projective coordinates and combined with the
complete addition formulas of Renes-Costello-Batina 2016 (Algorithms 4 and 6,
a = -3), so the identity and doubling need no special cases. Scalar
multiplication uses a fixed 4-bit window with the same sequence of operations
for every scalar of a given size. Python integers are not constant-time; the
values this protects (a pairing attempt's ephemeral x and the setup-code-derived
w0, w1) are short-lived and each guess at them costs an online attempt.

Encoding on the wire is SEC1 uncompressed only (PROTOCOL §5.1).
"""

from __future__ import annotations

from typing import Final

P: Final = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
A: Final = P - 3
B: Final = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX: Final = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY: Final = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
B3: Final = (3 * B) % P
COORD_LEN: Final = 32
POINT_LEN: Final = 65  # 0x04 ‖ X ‖ Y

type Projective = tuple[int, int, int]


class Point:
    """An affine point of P-256, or the identity (`x is None`). Immutable."""

    __slots__ = ("x", "y")

    x: int | None
    y: int | None

    def __init__(self, x: int | None, y: int | None) -> None:
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Point is immutable")

    @property
    def is_identity(self) -> bool:
        return self.x is None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self) -> int:
        return hash((self.x, self.y))

    def __repr__(self) -> str:
        if self.x is None or self.y is None:
            return "Point(identity)"
        return f"Point(x={self.x:#066x}, y={self.y:#066x})"

    def __add__(self, other: Point) -> Point:
        return _to_affine(_add(_from_affine(self), _from_affine(other)))

    def __neg__(self) -> Point:
        if self.x is None or self.y is None:
            return self
        return Point(self.x, (-self.y) % P)

    def __sub__(self, other: Point) -> Point:
        return self + (-other)

    def __rmul__(self, scalar: int) -> Point:
        return multiply(scalar, self)

    def encode(self) -> bytes:
        """SEC1 uncompressed encoding; the identity has none on our wire."""
        if self.x is None or self.y is None:
            raise ValueError("the identity has no uncompressed encoding")
        return b"\x04" + self.x.to_bytes(COORD_LEN, "big") + self.y.to_bytes(COORD_LEN, "big")


IDENTITY: Final = Point(None, None)
G: Final = Point(GX, GY)


def is_on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def decode_point(data: bytes) -> Point:
    """Strict SEC1 uncompressed decoding (PROTOCOL §5.1).

    Rejects a wrong length, a prefix other than 0x04 (so compressed and hybrid
    forms too), a coordinate ≥ p, and a point off the curve. The identity has no
    65-byte encoding, so it can never come out of here. P-256 has cofactor 1, so
    every point on the curve is in the prime-order group.
    """
    if len(data) != POINT_LEN:
        raise ValueError(f"a point must be {POINT_LEN} bytes (SEC1 uncompressed)")
    if data[0] != 0x04:
        raise ValueError("a point must start with 0x04 (SEC1 uncompressed)")
    x = int.from_bytes(data[1:33], "big")
    y = int.from_bytes(data[33:65], "big")
    if x >= P or y >= P:
        raise ValueError("point coordinate is not below p")
    if not is_on_curve(x, y):
        raise ValueError("point is not on P-256")
    return Point(x, y)


def decode_compressed(data: bytes) -> Point:
    """SEC1 compressed decoding: used only to read the RFC's M and N constants."""
    if len(data) != 33 or data[0] not in (2, 3):
        raise ValueError("a compressed point must be 33 bytes starting with 02 or 03")
    x = int.from_bytes(data[1:], "big")
    if x >= P:
        raise ValueError("point coordinate is not below p")
    rhs = (x * x * x + A * x + B) % P
    y = pow(rhs, (P + 1) // 4, P)  # p ≡ 3 (mod 4)
    if y * y % P != rhs:
        raise ValueError("x has no point on P-256")
    if y & 1 != data[0] & 1:
        y = P - y
    return Point(x, y)


# ---------------------------------------------------------------- projective


def _from_affine(point: Point) -> Projective:
    if point.x is None or point.y is None:
        return (0, 1, 0)
    return (point.x, point.y, 1)


def _to_affine(point: Projective) -> Point:
    x, y, z = point
    if z % P == 0:
        return IDENTITY
    z_inv = pow(z, -1, P)
    return Point(x * z_inv % P, y * z_inv % P)


def _add(p1: Projective, p2: Projective) -> Projective:
    """Complete addition, RCB16 Algorithm 4 (a = -3); valid for any two inputs."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    xx = x1 * x2 % P
    yy = y1 * y2 % P
    zz = z1 * z2 % P
    xy_pairs = ((x1 + y1) * (x2 + y2) - xx - yy) % P
    yz_pairs = ((y1 + z1) * (y2 + z2) - yy - zz) % P
    xz_pairs = ((x1 + z1) * (x2 + z2) - xx - zz) % P
    bzz3 = 3 * (xz_pairs - B * zz) % P
    yy_m_bzz3 = (yy - bzz3) % P
    yy_p_bzz3 = (yy + bzz3) % P
    zz3 = 3 * zz
    bxz3 = 3 * (B * xz_pairs - zz3 - xx) % P
    xx3_m_zz3 = (3 * xx - zz3) % P
    return (
        (yy_p_bzz3 * xy_pairs - yz_pairs * bxz3) % P,
        (yy_p_bzz3 * yy_m_bzz3 + xx3_m_zz3 * bxz3) % P,
        (yy_m_bzz3 * yz_pairs + xy_pairs * xx3_m_zz3) % P,
    )


def _double(p1: Projective) -> Projective:
    """Exception-free doubling, RCB16 Algorithm 6 (a = -3)."""
    x, y, z = p1
    xx = x * x % P
    yy = y * y % P
    zz = z * z % P
    xy2 = 2 * x * y % P
    xz2 = 2 * x * z % P
    bzz3 = 3 * (B * zz - xz2) % P
    yy_m_bzz3 = (yy - bzz3) % P
    yy_p_bzz3 = (yy + bzz3) % P
    zz3 = 3 * zz
    bxz6 = 3 * (B * xz2 - zz3 - xx) % P
    xx3_m_zz3 = (3 * xx - zz3) % P
    yz2 = 2 * y * z % P
    return (
        (yy_m_bzz3 * xy2 - bxz6 * yz2) % P,
        (yy_p_bzz3 * yy_m_bzz3 + xx3_m_zz3 * bxz6) % P,
        4 * yz2 * yy % P,
    )


_WINDOW: Final = 4


def multiply(scalar: int, point: Point) -> Point:
    """scalar·point for 0 ≤ scalar < 2^256 (reduce mod n first for larger values).

    Fixed 4-bit window over all 64 windows: 256 doublings and 64 complete
    additions whatever the scalar, including a table entry 0 (the identity).
    """
    if not 0 <= scalar < 1 << 256:
        raise ValueError("scalar out of range")
    base = _from_affine(point)
    table: list[Projective] = [(0, 1, 0), base]
    for _ in range(2, 1 << _WINDOW):
        table.append(_add(table[-1], base))
    acc: Projective = (0, 1, 0)
    for shift in range(256 - _WINDOW, -1, -_WINDOW):
        for _ in range(_WINDOW):
            acc = _double(acc)
        acc = _add(acc, table[(scalar >> shift) & 0xF])
    return _to_affine(acc)


def multiply_add(a: int, point_a: Point, b: int, point_b: Point) -> Point:
    """a·point_a + b·point_b (each multiplication at full, fixed cost)."""
    return _to_affine(_add(_from_affine(multiply(a, point_a)), _from_affine(multiply(b, point_b))))


def scalar_from_bytes(data: bytes) -> int:
    """A big-endian scalar reduced mod n."""
    return int.from_bytes(data, "big") % N


def scalar_to_bytes(scalar: int) -> bytes:
    """A scalar in [0, n) as 32 big-endian bytes."""
    if not 0 <= scalar < N:
        raise ValueError("scalar out of range")
    return scalar.to_bytes(COORD_LEN, "big")
